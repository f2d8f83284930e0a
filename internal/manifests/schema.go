package manifests

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"

	apiextensionsinternal "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	structuraldefaulting "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	structuralpruning "k8s.io/apiextensions-apiserver/pkg/apiserver/schema/pruning"
	apiservervalidation "k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"
)

// Schemas are the schemas of some CRDs, by group, version and kind.
type Schemas struct {
	byKind map[schema.GroupVersionKind]*crdSchema
}

type crdSchema struct {
	structural *structuralschema.Structural
	validator  apiservervalidation.SchemaValidator
	cel        *cel.Validator
}

// LoadSchemas reads the CRDs among fsys's .yaml files (every served version of each).
func LoadSchemas(fsys fs.FS) (*Schemas, error) {
	s := &Schemas{byKind: map[schema.GroupVersionKind]*crdSchema{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".yaml" {
			return err
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(data, &crd); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		for i := range crd.Spec.Versions {
			v := &crd.Spec.Versions[i]
			if !v.Served || v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
				continue
			}
			cs, err := compile(v.Schema.OpenAPIV3Schema)
			if err != nil {
				return fmt.Errorf("%s: version %s: %w", p, v.Name, err)
			}
			s.byKind[schema.GroupVersionKind{Group: crd.Spec.Group, Version: v.Name, Kind: crd.Spec.Names.Kind}] = cs
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading the CRDs: %w", err)
	}
	return s, nil
}

func compile(v1 *apiextensionsv1.JSONSchemaProps) (*crdSchema, error) {
	var internal apiextensionsinternal.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v1, &internal, nil); err != nil {
		return nil, err
	}
	structural, err := structuralschema.NewStructural(&internal)
	if err != nil {
		return nil, err
	}
	validator, _, err := apiservervalidation.NewSchemaValidator(&internal)
	if err != nil {
		return nil, err
	}
	return &crdSchema{structural: structural, validator: validator, cel: cel.NewValidator(structural, true, celconfig.PerCallLimit)}, nil
}

// Has reports whether the schemas know o's kind.
func (s *Schemas) Has(o Object) bool {
	_, ok := s.byKind[o.GroupVersionKind()]
	return ok
}

// Admit does to o, in place, what the API server does to a create of its kind: it refuses
// unknown fields (kubectl's default, strict field validation), applies the schema's defaults,
// and checks the schema and its CEL rules. The error names the object and every field at fault.
// A kind the schemas do not know is left alone.
func (s *Schemas) Admit(ctx context.Context, o Object) error {
	cs, ok := s.byKind[o.GroupVersionKind()]
	if !ok {
		return nil
	}
	pruned := o.DeepCopy().Object
	unknown := structuralpruning.PruneWithOptions(pruned, cs.structural, true, structuralschema.UnknownFieldPathOptions{TrackUnknownFieldPaths: true})
	if len(unknown) > 0 {
		return fmt.Errorf("%s: unknown field %s", o, quoteAll(unknown))
	}
	structuraldefaulting.Default(o.Object, cs.structural)
	errs := apiservervalidation.ValidateCustomResource(nil, o.Object, cs.validator)
	if len(errs) == 0 {
		celErrs, _ := cs.cel.Validate(ctx, nil, cs.structural, o.Object, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s is invalid: %w", o, errs.ToAggregate())
	}
	return nil
}

func quoteAll(fields []string) string {
	q := make([]string, len(fields))
	for i, f := range fields {
		q[i] = fmt.Sprintf("%q", f)
	}
	return strings.Join(q, ", ")
}
