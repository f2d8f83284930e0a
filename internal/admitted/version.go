package admitted

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/utils/clock"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// RecordsVersion is how the records on a pod (fixity.dev/verified, fixity.dev/spec-hash) are
// computed. Raise it whenever SpecHash or an encoding changes: pods stamped with another
// version are stamped again from their current spec instead of all looking drifted at once
// (Karpenter replaced whole fleets when a hash changed under it, and versions its hashes since).
const RecordsVersion = 2

// Stamp is the version of a pod's records: the records version and the Kubernetes minor
// version of the API server that admitted the pod, whose defaults the spec was hashed with.
// A Kubernetes upgrade may default a new field when it reads a pod stored before it; that
// changes the hash of a pod nobody touched.
type Stamp struct {
	Records    int
	Kubernetes string
}

func (s Stamp) String() string { return fmt.Sprintf("v%d;kubernetes=%s", s.Records, s.Kubernetes) }

// ParseStamp reads a fixity.dev/record-version value.
func ParseStamp(v string) (Stamp, error) {
	rec, k8s, ok := strings.Cut(v, ";kubernetes=")
	n, err := strconv.Atoi(strings.TrimPrefix(rec, "v"))
	if !ok || !strings.HasPrefix(rec, "v") || err != nil || k8s == "" {
		return Stamp{}, fmt.Errorf("annotation %s: %q is not v<records>;kubernetes=<major.minor>", fixityv1.RecordVersionAnnotation, v)
	}
	return Stamp{Records: n, Kubernetes: k8s}, nil
}

// StampOf returns the stamp of pod's records; a pod admitted before records were versioned
// (or with a value that does not parse) has the zero Stamp, which is never current.
func StampOf(pod *corev1.Pod) Stamp {
	s, err := ParseStamp(pod.Annotations[fixityv1.RecordVersionAnnotation])
	if err != nil {
		return Stamp{}
	}
	return s
}

// ServerVersioner is what Versions asks: a discovery client's ServerVersion.
type ServerVersioner interface {
	ServerVersion() (*version.Info, error)
}

// versionTTL bounds how long an API server upgrade goes unnoticed before a stale hash could be
// taken for drift; a mismatch refreshes at once (Current with fresh).
const versionTTL = time.Minute

// Versions tells the current Stamp: RecordsVersion and the API server's minor version, asked of
// the API server at most once per minute unless a caller needs it fresh.
type Versions struct {
	Server ServerVersioner
	Clock  clock.PassiveClock

	mu      sync.Mutex
	current Stamp
	at      time.Time
}

// Current returns the current Stamp; fresh asks the API server even within the minute.
func (v *Versions) Current(ctx context.Context, fresh bool) (Stamp, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.Clock == nil {
		v.Clock = clock.RealClock{}
	}
	if !fresh && v.current.Records != 0 && v.Clock.Since(v.at) < versionTTL {
		return v.current, nil
	}
	info, err := v.Server.ServerVersion()
	if err != nil {
		return Stamp{}, fmt.Errorf("asking the API server for its version: %w", err)
	}
	v.current = Stamp{Records: RecordsVersion, Kubernetes: strings.TrimSuffix(info.Major, "+") + "." + strings.TrimSuffix(info.Minor, "+")}
	v.at = v.Clock.Now()
	return v.current, nil
}

// Restamp writes pod's records again from its current spec under stamp: the verified record is
// kept as it is (it names what was verified, which no upgrade changes), the spec hash is taken
// anew. It returns whether anything changed.
func Restamp(pod *corev1.Pod, stamp Stamp) (bool, error) {
	hash, err := SpecHash(pod)
	if err != nil {
		return false, err
	}
	if pod.Annotations[fixityv1.SpecHashAnnotation] == hash && StampOf(pod) == stamp {
		return false, nil
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	if _, ok := pod.Annotations[fixityv1.SpecHashAnnotation]; ok {
		pod.Annotations[fixityv1.SpecHashAnnotation] = hash
	}
	pod.Annotations[fixityv1.RecordVersionAnnotation] = stamp.String()
	return true, nil
}
