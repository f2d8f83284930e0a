package images

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	k8sauthn "github.com/google/go-containerregistry/pkg/authn/kubernetes"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// Keychains builds registry keychains the way the kubelet authenticates a pull: the pod's
// imagePullSecrets and those of its service account (go-containerregistry's
// authn/kubernetes, the core of k8schain without the cloud-provider helpers).
type Keychains struct {
	// Client reads service accounts and pull secrets; nil means Default only.
	Client kubernetes.Interface
	// Default is the keychain without a Client: nil means anonymous access only. `kubectl
	// fixity` runs on a workstation and uses the user's own (docker and podman login).
	Default authn.Keychain
}

// ForPod returns a keychain for pod. It reads nothing until a registry asks for credentials,
// so admissions answered from cache cost no API calls.
func (k *Keychains) ForPod(ctx context.Context, pod *corev1.Pod) authn.Keychain {
	if k == nil || k.Client == nil {
		if k != nil && k.Default != nil {
			return k.Default
		}
		return authn.NewMultiKeychain()
	}
	opts := k8sauthn.Options{Namespace: pod.Namespace, ServiceAccountName: pod.Spec.ServiceAccountName}
	for _, s := range pod.Spec.ImagePullSecrets {
		opts.ImagePullSecrets = append(opts.ImagePullSecrets, s.Name)
	}
	id := pod.Namespace + "/" + opts.ServiceAccountName + "/" + strings.Join(opts.ImagePullSecrets, ",")
	return &lazyKeychain{id: id, load: func() (authn.Keychain, error) {
		// Shared by the lookups of one pod, so not cancelled with the first; bounded, so a
		// slow API server fails the lookup inside the admission budget rather than hang it.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keychainTimeout)
		defer cancel()
		kc, err := k8sauthn.New(ctx, k.Client, opts)
		if err != nil {
			return nil, fmt.Errorf("reading pull secrets of service account %s/%s: %w", pod.Namespace, opts.ServiceAccountName, err)
		}
		return kc, nil
	}}
}

// keychainTimeout bounds reading a pod's pull secrets and service account.
const keychainTimeout = 5 * time.Second

type lazyKeychain struct {
	// id names the credentials (namespace, service account, pull secrets) without reading them.
	id   string
	once sync.Once
	load func() (authn.Keychain, error)
	kc   authn.Keychain
	err  error
}

func (l *lazyKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	l.once.Do(func() { l.kc, l.err = l.load() })
	if l.err != nil {
		return nil, l.err
	}
	return l.kc.Resolve(r)
}

// keychainID names the credentials of kc for cache and singleflight keys: an answer got with
// one pod's pull secrets (a private tag's digest, its signatures) is never given to a pod that
// has other credentials, or none.
func keychainID(kc authn.Keychain) string {
	if l, ok := kc.(*lazyKeychain); ok {
		return "creds=" + l.id
	}
	return "creds=anonymous"
}
