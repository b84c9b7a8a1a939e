package engine

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"path"
	"strings"
	"text/template"

	"github.com/BurntSushi/toml"
	"github.com/Masterminds/sprig/v3"
	"github.com/gobwas/glob"
	sigsyaml "sigs.k8s.io/yaml"
	yamlv3 "sigs.k8s.io/yaml/goyaml.v3"

	"helm.sh/helm/v3/pkg/chart"
)

// baseFuncs is every function helm gives a template: sprig's (without env and expandenv), helm's conversions,
// and `required`, `fail` and a `lookup` that finds nothing, as without a cluster. `include` and `tpl` are
// placeholders here; a render binds them to its own template set (Render), and `getHostByName` too when DNS
// lookups are off.
func baseFuncs() template.FuncMap {
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	for name, fn := range map[string]interface{}{
		"toToml":        toTOML,
		"fromToml":      fromTOML,
		"toYaml":        toYAML,
		"toYamlPretty":  toYAMLPretty,
		"fromYaml":      fromYAML,
		"fromYamlArray": fromYAMLArray,
		"toJson":        toJSON,
		"fromJson":      fromJSON,
		"fromJsonArray": fromJSONArray,
		"include":       func(string, interface{}) string { return "not implemented" },
		"tpl":           func(string, interface{}) interface{} { return "not implemented" },
		"required":      required,
		"fail":          failRender,
		"lookup": func(string, string, string, string) (map[string]interface{}, error) {
			return map[string]interface{}{}, nil
		},
	} {
		funcs[name] = fn
	}
	return funcs
}

// required stops the render with warn when val is nil or the empty string.
func required(warn string, val interface{}) (interface{}, error) {
	if s, isString := val.(string); val == nil || (isString && s == "") {
		return val, wrapFailure(warn)
	}
	return val, nil
}

// failRender is helm's `fail`: stop the render with msg.
func failRender(msg string) (string, error) { return "", wrapFailure(msg) }

func toYAMLPretty(v interface{}) string {
	var out bytes.Buffer
	enc := yamlv3.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return strings.TrimSuffix(out.String(), "\n")
}

// unmarshal is a parser of one format: sigs.k8s.io/yaml's, encoding/json's or toml's Unmarshal.
type unmarshal func(data []byte, into interface{}) error

func yamlUnmarshal(data []byte, into interface{}) error { return sigsyaml.Unmarshal(data, into) }

// parsedMap is str parsed as a mapping; what does not parse gives a mapping whose "Error" is the reason.
func parsedMap(parse unmarshal, str string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := parse([]byte(str), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

// parsedList is str parsed as a list; what does not parse gives a list of the reason alone.
func parsedList(parse unmarshal, str string) []interface{} {
	a := []interface{}{}
	if err := parse([]byte(str), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

func fromYAML(str string) map[string]interface{} { return parsedMap(yamlUnmarshal, str) }
func fromYAMLArray(str string) []interface{}     { return parsedList(yamlUnmarshal, str) }
func fromJSON(str string) map[string]interface{} { return parsedMap(json.Unmarshal, str) }
func fromJSONArray(str string) []interface{}     { return parsedList(json.Unmarshal, str) }
func fromTOML(str string) map[string]interface{} { return parsedMap(toml.Unmarshal, str) }

// toTOML writes v as TOML; on failure the text is the reason.
func toTOML(v interface{}) string {
	var out bytes.Buffer
	if err := toml.NewEncoder(&out).Encode(v); err != nil {
		return err.Error()
	}
	return out.String()
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

// files is a chart's non-template files by path: `.Files` in a template.
type files map[string][]byte

func newFiles(from []*chart.File) files {
	out := files{}
	for _, f := range from {
		out[f.Name] = f.Data
	}
	return out
}

// GetBytes is the file's content, empty when there is no such file.
func (f files) GetBytes(name string) []byte {
	if data, ok := f[name]; ok {
		return data
	}
	return []byte{}
}

// Get is the file's content as text.
func (f files) Get(name string) string { return string(f.GetBytes(name)) }

// Glob is the files whose path matches pattern ('/' separates; a pattern that does not compile matches all).
func (f files) Glob(pattern string) files {
	g, err := glob.Compile(pattern, '/')
	if err != nil {
		g, _ = glob.Compile("**")
	}
	out := files{}
	for name, data := range f {
		if g.Match(name) {
			out[name] = data
		}
	}
	return out
}

// AsConfig is the files as the data of a ConfigMap: YAML, keyed by base name.
func (f files) AsConfig() string {
	if f == nil {
		return ""
	}
	m := map[string]string{}
	for name, data := range f {
		m[path.Base(name)] = string(data)
	}
	return toYAML(m)
}

// AsSecrets is the files as the data of a Secret: base64 values keyed by base name, as YAML.
func (f files) AsSecrets() string {
	if f == nil {
		return ""
	}
	m := map[string]string{}
	for name, data := range f {
		m[path.Base(name)] = base64.StdEncoding.EncodeToString(data)
	}
	return toYAML(m)
}

// Lines is the file's lines, without the newline ending the last one.
func (f files) Lines(name string) []string {
	if f == nil || len(f[name]) == 0 {
		return []string{}
	}
	text := strings.TrimSuffix(string(f[name]), "\n")
	return strings.Split(text, "\n")
}
