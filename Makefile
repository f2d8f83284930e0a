# Fixity: an operator that keeps workloads immutable. `make help` lists the targets.

IMG ?= ghcr.io/fixity-dev/fixity:dev
LOCALBIN ?= $(CURDIR)/bin
K8S_BIN ?= $(LOCALBIN)/k8s
# Go packages that carry kubebuilder markers (the test harness does not).
MARKER_PATHS = ./api/...;./cmd/...;./controllers/...;./webhooks/...;./internal/...

## Tool versions, installed into bin/ from the Go module proxy.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
GOLANGCI_LINT_VERSION ?= v2.15.0
KUSTOMIZE_VERSION ?= v5.8.1
HELM_VERSION ?= v3.22.0
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
KUSTOMIZE ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)

# Tests find the Kubernetes binaries here (envtest and the local cluster).
export FIXITY_K8S_BIN = $(K8S_BIN)
export KUBEBUILDER_ASSETS = $(K8S_BIN)
# test/install renders the Helm chart with this.
export FIXITY_HELM = $(HELM)

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

.PHONY: all
all: build

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  %-16s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) $(KUSTOMIZE) ## Generate CRDs, RBAC and webhook configurations into config/ (and copy OpenReports' CRDs), and the Helm chart's templates from config/default.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="$(MARKER_PATHS)" \
		output:crd:artifacts:config=config/crd/bases
	hack/openreports-crds.sh
	$(KUSTOMIZE) build config/default | go run ./hack/chart charts/fixity config/openreports

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -l -w $$(git ls-files --cached --others --exclude-standard '*.go')

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint.
	$(GOLANGCI_LINT) run ./...

.PHONY: verify
verify: manifests generate fmt ## Fail when generated or formatted files are stale.
	@if [ -n "$$(git status --porcelain -- api config charts go.mod go.sum '*.go')" ]; then \
		git status --porcelain -- api config charts go.mod go.sum '*.go'; git diff --stat; \
		echo "generated files are stale: run 'make manifests generate fmt' and commit"; exit 1; fi

.PHONY: test
test: manifests generate fmt vet k8s-binaries provisioner-crds karpenter cosign real-node $(HELM) ## Run unit, integration (envtest) and e2e (local cluster) tests, then fuzz each webhook.
	go test ./... -count=1 -timeout 40m
	$(MAKE) fuzz

# Every webhook's decode-and-handle path, fuzzed with AdmissionReview bodies (test/builders.FuzzWebhook).
FUZZ_TARGETS = webhooks/pods:FuzzPodWebhooks webhooks/workloads:FuzzWorkloadWebhook webhooks/podaccess:FuzzPodAccessWebhooks \
	webhooks/accessgrant:FuzzGrantWebhooks webhooks/policies:FuzzPolicyWebhook
# A count, not a duration: with a duration Go's fuzz coordinator can fail a clean run with a bare
# "context deadline exceeded" when its deadline races a busy worker (golang/go#51484), which is
# how CI failed on a loaded machine; a count has no deadline to race.
FUZZTIME ?= 10000x

.PHONY: fuzz
fuzz: ## Fuzz each webhook for FUZZTIME executions (default 10000x); a crasher is saved under the package's testdata/fuzz.
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t##*:}; \
		echo "fuzzing $$fn in ./$$pkg for $(FUZZTIME)"; \
		out=$$(go test ./$$pkg -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 1x 2>&1) || { echo "$$out" | tail -60; exit 1; }; \
		echo "$$out" | grep -E '^fuzz: elapsed' | tail -1; \
	done

.PHONY: bench
bench: k8s-binaries ## Print benchmark figures: admission latency (hack/bench/admission), drift at 5,000 pods (hack/bench/drift), node drift at 500 nodes (hack/bench/nodes), memory with 5,000 ConfigMaps and 5,000 Secrets (hack/bench/config).
	go run ./hack/bench/admission
	go run ./hack/bench/drift
	go run ./hack/bench/nodes
	go run ./hack/bench/config

.PHONY: test-unit
test-unit: ## Run only the tests that need no API server.
	go test $$(go list ./... | grep -v -e /test/ -e /hack/) -count=1

##@ Build

.PHONY: build
build: manifests generate fmt vet ## Build the manager binary and the kubectl plugin (bin/kubectl-fixity: put bin/ on PATH for `kubectl fixity`).
	go build -o $(LOCALBIN)/manager ./cmd
	go build -o $(LOCALBIN)/kubectl-fixity ./cmd/kubectl-fixity

.PHONY: run
run: manifests generate ## Run the manager against the current kubeconfig.
	go run ./cmd

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build -t $(IMG) .

##@ Local cluster and demo

.PHONY: k8s-binaries
k8s-binaries: ## Build etcd, the Kubernetes control plane, kubectl and KWOK into bin/k8s (first time ~12 min).
	hack/build-k8s.sh

.PHONY: karpenter
karpenter: ## Build Karpenter's KWOK provider into bin/karpenter (for the e2e cluster; first time ~5 min).
	hack/build-karpenter.sh

.PHONY: cosign
cosign: ## Build the cosign CLI into bin/cosign (the docs' signing commands, run by test/e2e; first time ~3 min).
	hack/build-cosign.sh

.PHONY: real-node
real-node: ## Build the real node's kubelet, containerd and pause into bin/node, and install runc, CNI plugins and busybox from Debian (needs root; first time ~6 min).
	hack/build-node.sh

.PHONY: provisioner-crds
provisioner-crds: ## Copy Karpenter's and Cluster API's CRDs from their Go modules into bin/crds (for the e2e cluster).
	hack/provisioner-crds.sh

.PHONY: demo
demo: k8s-binaries build ## Start a local cluster and registry, run the operator against it, apply the samples.
	hack/demo.sh up

.PHONY: demo-down
demo-down: ## Stop everything `make demo` started.
	hack/demo.sh down

.PHONY: local-cluster
local-cluster: k8s-binaries ## Start only the local cluster (hack/local-cluster.sh up).
	hack/local-cluster.sh up

##@ Tools

$(CONTROLLER_GEN):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
	mv $(LOCALBIN)/controller-gen $@

$(GOLANGCI_LINT):
	GOBIN=$(LOCALBIN) go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(LOCALBIN)/golangci-lint $@

$(KUSTOMIZE):
	GOBIN=$(LOCALBIN) go install sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv $(LOCALBIN)/kustomize $@

$(HELM):
	GOBIN=$(LOCALBIN) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	mv $(LOCALBIN)/helm $@
