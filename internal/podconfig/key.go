package podconfig

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	fixityv1 "github.com/fixity-dev/fixity/api/v1alpha1"
)

// keyField is the Secret's data key holding the HMAC key.
const keyField = "key"

// keySize is the HMAC key's length: SHA-256's block-sized security, 32 random bytes.
const keySize = 32

// Key is the HMAC key config hashes are made with, and its ID (recorded with every hash).
type Key struct {
	id     string
	secret []byte
}

// NewKey returns a Key for secret (tests; the operator uses EnsureKey).
func NewKey(secret []byte) *Key {
	sum := sha256.Sum256(append([]byte("fixity.dev/config-key-id\x00"), secret...))
	return &Key{id: hex.EncodeToString(sum[:8]), secret: slices.Clone(secret)}
}

// ID identifies the key without revealing it.
func (k *Key) ID() string { return k.id }

// EnsureKey reads the key from Secret fixity-config-key of namespace, creating it with a new
// random key if there is none. Replicas racing to create it all end up with the one created
// first. c must read from the API server, not a cache.
func EnsureKey(ctx context.Context, c client.Client, namespace string) (*Key, error) {
	nn := types.NamespacedName{Namespace: namespace, Name: fixityv1.ConfigKeySecret}
	for range 3 {
		s := &corev1.Secret{}
		err := c.Get(ctx, nn, s)
		switch {
		case err == nil:
			b := s.Data[keyField]
			if len(b) < keySize {
				return nil, fmt.Errorf("secret %s: data.%s must hold at least %d bytes, has %d (to have a new key made, stop every replica of the manager, then delete the Secret: a running replica puts its key back)", nn, keyField, keySize, len(b))
			}
			return NewKey(b), nil
		case !apierrors.IsNotFound(err):
			return nil, fmt.Errorf("reading the config hash key %s: %w", nn, err)
		}
		b := make([]byte, keySize)
		if _, err := rand.Read(b); err != nil {
			return nil, fmt.Errorf("generating the config hash key: %w", err)
		}
		k := NewKey(b)
		switch err := c.Create(ctx, k.secretIn(namespace)); {
		case err == nil:
			return k, nil
		case !apierrors.IsAlreadyExists(err):
			return nil, fmt.Errorf("creating the config hash key %s: %w", nn, err)
		}
		// Another replica made it first: read theirs.
	}
	return nil, fmt.Errorf("the config hash key %s could not be read or created", nn)
}

// secretIn is the Secret that keeps k in namespace.
func (k *Key) secretIn(namespace string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: fixityv1.ConfigKeySecret},
		Immutable:  ptr.To(true),
		Data:       map[string][]byte{keyField: slices.Clone(k.secret)},
	}
}

// RestoreKey creates Secret fixity-config-key of namespace from k, the key this replica holds,
// unless it exists. It reports whether it created it, and whether the Secret now holds k; false
// (no error) when another key was made first, which the caller must say.
func RestoreKey(ctx context.Context, c client.Client, namespace string, k *Key) (created, same bool, err error) {
	err = c.Create(ctx, k.secretIn(namespace))
	if err == nil {
		return true, true, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return false, false, fmt.Errorf("restoring the config hash key %s/%s: %w", namespace, fixityv1.ConfigKeySecret, err)
	}
	s := &corev1.Secret{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: fixityv1.ConfigKeySecret}, s); err != nil {
		return false, false, fmt.Errorf("reading the config hash key %s/%s: %w", namespace, fixityv1.ConfigKeySecret, err)
	}
	return false, hmac.Equal(s.Data[keyField], k.secret), nil
}

// Sum is the keyed hash of a ConfigMap's or Secret's data (a ConfigMap's data and binaryData
// together: the API server keeps their keys distinct). Keys are sorted and every key and value
// is length-prefixed, so no two different data give the same input. Labels, annotations and
// immutable are not data: changing them changes no hash.
func (k *Key) Sum(obj client.Object) (string, bool) {
	var kind string
	var data map[string][]byte
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		kind, data = KindConfigMap, maps.Clone(o.BinaryData)
		if data == nil {
			data = make(map[string][]byte, len(o.Data))
		}
		for key, v := range o.Data {
			data[key] = []byte(v)
		}
	case *corev1.Secret:
		kind, data = KindSecret, o.Data
	default:
		return "", false
	}
	mac := hmac.New(sha256.New, k.secret)
	mac.Write([]byte(kind + "\x00"))
	for _, key := range slices.Sorted(maps.Keys(data)) {
		field(mac, key, data[key])
	}
	// 128 bits of the MAC: a record stays short with many objects, and forging one would take
	// the key anyway.
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:16]), true
}

func field(h hash.Hash, key string, value []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(key)))
	h.Write(n[:])
	h.Write([]byte(key))
	binary.BigEndian.PutUint64(n[:], uint64(len(value)))
	h.Write(n[:])
	h.Write(value)
}
