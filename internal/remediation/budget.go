package remediation

import (
	"fmt"

	"k8s.io/apimachinery/pkg/util/intstr"
)

// Budget returns how many of total may be disrupted at once under value, a number or a
// percentage of total as in a Deployment's maxUnavailable (rounded down, so "50%" of 3 is 1).
// A nil value allows one. A budget is never negative and never more than total.
func Budget(value *intstr.IntOrString, total int) (int, error) {
	if value == nil {
		return min(1, max(total, 0)), nil
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(value, total, false)
	if err != nil {
		return 0, fmt.Errorf("disruption budget %q: %w", value.String(), err)
	}
	return min(max(n, 0), max(total, 0)), nil
}
