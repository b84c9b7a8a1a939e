package main

// Values-schema validation as helm's chartutil.ValidateAgainstSchema does it (the chart's schema, then each
// subchart's with its share of the values, messages in the same words), with one difference: a schema is
// compiled once and kept by its text. Helm compiles it again for every render, about a sixth of a render of
// a chart with a schema of some size. A schema whose compile would read anything from outside its own text
// (a $ref to a file, a URL or a URN) is left to helm's own function every time, so it sees what those hold now.

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
)

const schemaURL = "file:///values.schema.json"

// schemaMemoLimit bounds the schema text whose compiled schemas are kept (renderer.schemas).
const schemaMemoLimit = 64 << 20

// noLoads is a loader that refuses every read and records that one was asked for.
type noLoads struct{ asked *bool }

func (l noLoads) Load(url string) (any, error) {
	*l.asked = true
	return nil, fmt.Errorf("not read here: %s", url)
}

// validateAgainstSchema is chartutil.ValidateAgainstSchema through the memo.
func (r *renderer) validateAgainstSchema(chrt *chart.Chart, values map[string]interface{}) error {
	var sb strings.Builder
	if chrt.Schema != nil {
		if err := r.validateAgainstSingleSchema(values, chrt.Schema); err != nil {
			fmt.Fprintf(&sb, "%s:\n", chrt.Name())
			sb.WriteString(err.Error())
		}
	}
	for _, subchart := range chrt.Dependencies() {
		raw, exists := values[subchart.Name()]
		if !exists || raw == nil {
			continue
		}
		subchartValues, ok := raw.(map[string]any)
		if !ok {
			fmt.Fprintf(&sb, "%s:\ninvalid type for values: expected object (map), got %T\n", subchart.Name(), raw)
			continue
		}
		if err := r.validateAgainstSchema(subchart, subchartValues); err != nil {
			sb.WriteString(err.Error())
		}
	}
	if sb.Len() > 0 {
		return errors.New(sb.String())
	}
	return nil
}

// validateAgainstSingleSchema is chartutil.ValidateAgainstSingleSchema with the compiled schema remembered.
func (r *renderer) validateAgainstSingleSchema(values chartutil.Values, schemaJSON []byte) (reterr error) {
	defer func() {
		if p := recover(); p != nil {
			reterr = fmt.Errorf("unable to validate schema: %s", p)
		}
	}()
	validator, found := r.schemas.Get(string(schemaJSON))
	if !found {
		compiled, outside, err := compileSchema(schemaJSON)
		if outside {
			// It refers to something outside its text: helm's own validation, loaders and all, every time.
			return chartutil.ValidateAgainstSingleSchema(values, schemaJSON)
		}
		if err != nil {
			return err
		}
		validator = compiled
		r.schemas.Put(string(schemaJSON), compiled, len(schemaJSON))
	}
	if err := validator.Validate(values.AsMap()); err != nil {
		// chartutil.JSONSchemaValidationError's message (its error field is not exported).
		return errors.New(strings.TrimPrefix(err.Error(), "jsonschema validation failed with '"+schemaURL+"#'\n") + "\n")
	}
	return nil
}

// compileSchema compiles a values schema as helm does, but with no loader: outside says whether the compile
// asked to read anything beyond the schema's own text (its result is then not helm's).
func compileSchema(schemaJSON []byte) (*jsonschema.Schema, bool, error) {
	outside := false
	schema, err := jsonschema.UnmarshalJSON(bytes.NewReader(schemaJSON))
	if err != nil {
		return nil, outside, err
	}
	loader := jsonschema.SchemeURLLoader{}
	for _, scheme := range []string{"file", "http", "https", "urn"} {
		loader[scheme] = noLoads{asked: &outside}
	}
	compiler := jsonschema.NewCompiler()
	compiler.UseLoader(loader)
	if err := compiler.AddResource(schemaURL, schema); err != nil {
		return nil, outside, err
	}
	validator, err := compiler.Compile(schemaURL)
	return validator, outside, err
}
