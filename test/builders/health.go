package builders

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// Health is what kstatus (Flux, cli-utils) and the README's Argo CD health check make of an
// object.
type Health struct {
	Kstatus status.Status
	Argo    string
}

// The three ways an object can read, to both.
var (
	Current    = Health{status.CurrentStatus, "Healthy"}
	InProgress = Health{status.InProgressStatus, "Progressing"}
	Failed     = Health{status.FailedStatus, "Degraded"}
)

// ArgoHealthCheck is the Lua the README (in the repository at root) tells Argo CD users to put in
// argocd-cm, as Argo CD runs it.
func ArgoHealthCheck(root string) (string, error) {
	b, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile("(?s)resource\\.customizations\\.health\\.fixity\\.dev_\\*: \\|\n(.*?)\n```").FindSubmatch(b)
	if m == nil {
		return "", errors.New("the README has no Argo CD health check for fixity.dev_*")
	}
	var lines []string
	for _, l := range strings.Split(string(m[1]), "\n") {
		lines = append(lines, strings.TrimPrefix(l, "    "))
	}
	return strings.Join(lines, "\n"), nil
}

// Judge is what kstatus and the Argo CD health check script make of u.
func Judge(script string, u *unstructured.Unstructured) (Health, error) {
	res, err := status.Compute(u)
	if err != nil {
		return Health{}, err
	}
	argo, err := RunArgoHealth(script, u.Object)
	return Health{Kstatus: res.Status, Argo: argo}, err
}

// JudgeLive reads obj (typed or unstructured; its kind, namespace and name) from c as the API
// server serves it, and judges it as Judge does.
func JudgeLive(ctx context.Context, c client.Client, script string, obj client.Object) (Health, error) {
	gvk, err := apiutil.GVKForObject(obj, c.Scheme())
	if err != nil {
		return Health{}, err
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gvk)
	if err := c.Get(ctx, client.ObjectKeyFromObject(obj), u); err != nil {
		return Health{}, err
	}
	return Judge(script, u)
}

// RunArgoHealth runs an Argo CD health script on obj, converted to Lua values as Argo CD's Lua
// VM does (objects and arrays as tables, numbers as numbers), and returns hs.status.
func RunArgoHealth(script string, obj map[string]any) (string, error) {
	l := lua.NewState()
	defer l.Close()
	v, err := toLua(l, obj)
	if err != nil {
		return "", err
	}
	l.SetGlobal("obj", v)
	if err := l.DoString("local function check()\n" + script + "\nend\nhs = check()"); err != nil {
		return "", fmt.Errorf("running the health check: %w", err)
	}
	hs, ok := l.GetGlobal("hs").(*lua.LTable)
	if !ok {
		return "", errors.New("the health check returned no table")
	}
	return lua.LVAsString(hs.RawGetString("status")), nil
}

func toLua(l *lua.LState, v any) (lua.LValue, error) {
	switch v := v.(type) {
	case map[string]any:
		t := l.NewTable()
		for k, e := range v {
			lv, err := toLua(l, e)
			if err != nil {
				return nil, err
			}
			t.RawSetString(k, lv)
		}
		return t, nil
	case []any:
		t := l.NewTable()
		for _, e := range v {
			lv, err := toLua(l, e)
			if err != nil {
				return nil, err
			}
			t.Append(lv)
		}
		return t, nil
	case string:
		return lua.LString(v), nil
	case bool:
		return lua.LBool(v), nil
	case int64:
		return lua.LNumber(v), nil
	case float64:
		return lua.LNumber(v), nil
	case nil:
		return lua.LNil, nil
	}
	return nil, fmt.Errorf("no Lua value for %T", v)
}
