package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/onsi/gomega"
	"github.com/onsi/gomega/format"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
	"github.com/fixity-dev/fixity/test/cluster"
)

// `make demo` is one of the two commands a newcomer runs; this runs its script with its own
// directory and ports and checks what it promises: Ready fake nodes, a running manager, Ready
// policies, a rolled-out Deployment, a drifted pod and a pod whose ConfigMap changed replaced, the break-glass walk-through, and that `down` leaves nothing behind.
func TestDemo(t *testing.T) {
	format.MaxLength = 0 // a failed expectation shows the whole demo output
	g := gomega.NewWithT(t)
	dir := t.TempDir()
	ports := make([]int, 3)
	for i := range ports {
		p, err := cluster.FreePort()
		g.Expect(err).NotTo(gomega.HaveOccurred())
		ports[i] = p
	}
	envVars := append(os.Environ(),
		"FIXITY_LOCAL_DIR="+dir,
		"FIXITY_REGISTRY=127.0.0.1:"+strconv.Itoa(ports[0]),
		"FIXITY_WEBHOOK_PORT="+strconv.Itoa(ports[1]),
		"FIXITY_PROBE_ADDR=127.0.0.1:"+strconv.Itoa(ports[2]),
		"FIXITY_MANAGER="+managerBin,
	)
	script := filepath.Join(root, "hack", "demo.sh")
	demo := func(arg string) (string, error) {
		cmd := exec.Command(script, arg)
		cmd.Env = envVars
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() { _, _ = demo("down") })

	out, err := demo("up")
	g.Expect(err).NotTo(gomega.HaveOccurred(), "%s\n--- localenv.log:\n%s\n--- manager.log:\n%s", out, readFile(dir, "localenv.log"), readFile(dir, "manager.log"))
	g.Expect(out).To(gomega.ContainSubstring("kwok-node-2   Ready"))
	g.Expect(out).To(gomega.MatchRegexp(`production\s+Enforce\s+True`))
	g.Expect(out).To(gomega.ContainSubstring(`admission webhook "workloads.fixity.dev" denied the request: [policy production] container "unsigned"`))
	g.Expect(out).To(gomega.ContainSubstring("is not signed by enough trusted authorities: 0 of the 1 required verified it (production/release: no signatures found)"))
	g.Expect(out).To(gomega.ContainSubstring(`deployment "web" successfully rolled out`))
	g.Expect(out).To(gomega.MatchRegexp(`Deployment template image \(as applied\): 127\.0\.0\.1:\d+/shop/web:1\.0`))
	g.Expect(out).To(gomega.MatchRegexp(`web-\S+\s+kwok-node-\d\s+127\.0\.0\.1:\d+/shop/web@sha256:[0-9a-f]{64}\s+\{"web":\{"image":"[^"]+","authorities":\["production/release"\],"formats":\{"production/release":"bundle"\},"attestations":\["production/provenance"\]\}\}`))
	g.Expect(out).To(gomega.MatchRegexp(`fixity.dev/verified: \{"legacy":\{"image":"127\.0\.0\.1:\d+/shop/legacy@sha256:[0-9a-f]{64}","authorities":\["production/release"\],"formats":\{"production/release":"legacy"\},"attestations":\["production/provenance"\]\}\}`))
	g.Expect(out).To(gomega.ContainSubstring("make demo-down"))
	// The break-glass part: exec denied, alice's grant waits for bob's approval, then lets her in
	// and not bob, it expires and the pod she touched is marked for replacement.
	g.Expect(out).To(gomega.ContainSubstring("exec into pod"))
	g.Expect(out).To(gomega.ContainSubstring("grant shop/inc-4242 waits for 1 more approval(s) by users other than alice"))
	g.Expect(out).To(gomega.ContainSubstring("alice requested AccessGrant shop/inc-4242 and cannot approve it"))
	g.Expect(out).To(gomega.MatchRegexp(`approved by: bob at \S+`))
	g.Expect(out).To(gomega.ContainSubstring("belongs to alice, not bob"))
	g.Expect(out).To(gomega.MatchRegexp(`alice Exec web-\S+ `))
	g.Expect(out).To(gomega.MatchRegexp(`inc-4242\s+Expired\s+alice`))
	g.Expect(out).To(gomega.ContainSubstring(fixityv1.EventReplacementDue))
	// Drift: the pod running another digest, and later the pod alice was in, are replaced.
	g.Expect(out).To(gomega.MatchRegexp(fixityv1.EventDriftDetected + `\s+\[policy production\] ImageDigest: container "web" runs sha256:[0-9a-f]{64}, not the admitted sha256:`))
	g.Expect(out).To(gomega.MatchRegexp(fixityv1.EventDriftDetected + `\s+\[policy production\] InteractiveAccess: exec by alice under grant shop/inc-4242, which has ended`))
	g.Expect(strings.Count(out, "Drifted pod evicted to be replaced by a fresh one")).To(gomega.Equal(2))
	// Config: the ConfigMap edited under cfgpod is drift, and the pod is recreated with the new data.
	g.Expect(out).To(gomega.MatchRegexp(`fixity.dev/config: \{"key":"[^"]+","objects":\{"ConfigMap/cfgpod-settings":"([^"]+)"\}\}`))
	g.Expect(out).To(gomega.MatchRegexp(fixityv1.EventDriftDetected + `\s+\[policy production\] ` + string(fixityv1.CheckConfigChange) + `: ConfigMap "cfgpod-settings" changed`))
	g.Expect(out).To(gomega.MatchRegexp(fixityv1.EventRecreated + `\s+\[policy production\] Drifted bare pod recreated from its admitted spec`))
	recorded := regexp.MustCompile(`(?m)^fixity.dev/config: (.+)$`).FindStringSubmatch(out)
	recreated := regexp.MustCompile(`(?m)^recreated with fixity.dev/config: (.+)$`).FindStringSubmatch(out)
	g.Expect(recorded).To(gomega.HaveLen(2))
	g.Expect(recreated).To(gomega.HaveLen(2))
	g.Expect(recreated[1]).To(gomega.And(gomega.ContainSubstring(`"ConfigMap/cfgpod-settings":`), gomega.Not(gomega.Equal(recorded[1]))), "the new pod records the new data")
	// Nodes: a kernel changed in place; Karpenter is asked to replace the node, and does.
	g.Expect(out).To(gomega.MatchRegexp(fixityv1.EventNodeDrifted + `\s+\[policy workers\] Node changed in place: KernelVersion: recorded "[^"]+", observed "6\.1\.0-29-cloud-amd64"`))
	g.Expect(out).To(gomega.MatchRegexp(fixityv1.EventNodeReplacing + `\s+Asked NodeClaim burst-\S+ to replace the node`))
	g.Expect(out).To(gomega.MatchRegexp(`Karpenter drained and removed (kwok-burst-\S+) and brought a fresh node`))
	g.Expect(out).To(gomega.MatchRegexp(`burst-\S+\s+c-\S+\s+on-demand\s+\S+\s+kwok-burst-\S+\s+True`))
	g.Expect(out).To(gomega.MatchRegexp(`workers\s+Enforce\s+True\s+4\s+0`))
	g.Expect(readFile(dir, "manager.log")).To(gomega.ContainSubstring(`"Running as"`))

	out, err = demo("down")
	g.Expect(err).NotTo(gomega.HaveOccurred(), out)
	g.Expect(out).To(gomega.ContainSubstring("manager stopped"))
	g.Expect(out).To(gomega.ContainSubstring("local environment stopped"))
	g.Expect(filepath.Join(dir, "ready")).NotTo(gomega.BeAnExistingFile())
}

func readFile(dir, name string) string {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return err.Error()
	}
	return strings.TrimSpace(string(b))
}
