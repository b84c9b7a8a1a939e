package engine

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"sync"

	yamlv2 "go.yaml.in/yaml/v2"
	sigsyaml "sigs.k8s.io/yaml"

	"chartproof.local/tools/chartproof-render/memo"
)

// toYAML is helm's toYaml: sigs.k8s.io/yaml.Marshal(v) without its final newline, "" when v cannot be written.
func toYAML(v interface{}) string {
	data, err := marshalYAML(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

// keyBytesLimit: a longer key may be near go-yaml's 1024-character reach of a simple key once escaped.
const keyBytesLimit = 128

// marshalYAML returns what sigs.k8s.io/yaml.Marshal(v) returns, in a fraction of its time.
//
// sigs.k8s.io/yaml writes v as JSON with encoding/json, reads that JSON back with go-yaml v2 (JSON is YAML)
// so that numbers get YAML's types, and writes the result with go-yaml v2. Reading the JSON with encoding/json
// instead, and giving each number the type go-yaml's resolver gives that text, builds the same tree, and
// go-yaml v2 writes it; most of the time was go-yaml's reading. Where go-yaml v2 reads JSON text otherwise
// than a JSON reader, the JSON goes through sigs.k8s.io/yaml's own path:
//   - characters unescaped in encoding/json's output that YAML 1.1 refuses in a stream (DEL, the C1 controls,
//     U+FFFE, U+FFFF) or reads as a line break (NEL), and the byte order mark;
//   - object keys near go-yaml's 1024-character reach of a simple key;
//   - numbers go-yaml would read as neither int nor float (beyond float64's range);
//   - nesting beyond encoding/json's limit (10000 levels, go-yaml's too: yaml_test.go compares around it).
//
// The YAML is a function of the JSON alone, so it is remembered by the JSON's text: across renders of a chart
// most toYaml calls are given what they were given before (resources, security contexts, selectors).
func marshalYAML(v interface{}) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	written.Lock()
	found, ok := written.Get(string(j))
	written.Unlock()
	if ok {
		return found, nil
	}
	var out []byte
	if tree, ok := readJSON(j); ok {
		out, err = yamlv2.Marshal(tree)
	} else {
		out, err = sigsyaml.JSONToYAML(j)
	}
	if err == nil {
		written.Lock()
		written.Put(string(j), out, len(j)+len(out))
		written.Unlock()
	}
	return out, err
}

// written is YAML text by JSON text. Renders are one at a time, but it is locked all the same: it is package
// state, and toYaml a plain function.
var written = struct {
	sync.Mutex
	*memo.Bounded[string, []byte]
}{Bounded: memo.New[string, []byte](64 << 20)}

// readJSON is the tree go-yaml v2 reads from j (JSON as encoding/json writes it); false where it cannot say.
func readJSON(j []byte) (interface{}, bool) {
	if readsOtherwise(j) {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var raw interface{}
	if err := dec.Decode(&raw); err != nil {
		return nil, false
	}
	return asYAML(raw)
}

// readsOtherwise reports whether j holds a character go-yaml v2 refuses or reads as a line break, or a BOM.
func readsOtherwise(j []byte) bool {
	for i := 0; i < len(j); i++ {
		switch c := j[i]; c {
		case 0x7f:
			return true
		case 0xc2: // U+0080..U+009F: C1 controls, NEL among them
			if i+1 < len(j) && j[i+1] <= 0x9f {
				return true
			}
		case 0xef: // U+FEFF, U+FFFE, U+FFFF
			if i+2 < len(j) && ((j[i+1] == 0xbb && j[i+2] == 0xbf) || (j[i+1] == 0xbf && j[i+2] >= 0xbe)) {
				return true
			}
		}
	}
	return false
}

// asYAML gives a tree from encoding/json (UseNumber) go-yaml v2's types: mappings keyed by interface{}, and
// each number as go-yaml resolves its text.
func asYAML(v interface{}) (interface{}, bool) {
	switch v := v.(type) {
	case map[string]interface{}:
		out := make(map[interface{}]interface{}, len(v))
		for key, item := range v {
			if len(key) > keyBytesLimit {
				return nil, false
			}
			converted, ok := asYAML(item)
			if !ok {
				return nil, false
			}
			out[key] = converted
		}
		return out, true
	case []interface{}:
		for i, item := range v {
			converted, ok := asYAML(item)
			if !ok {
				return nil, false
			}
			v[i] = converted
		}
		return v, true
	case json.Number:
		return yamlNumber(string(v))
	default: // string, bool, nil
		return v, true
	}
}

// yamlNumber is go-yaml v2's value for a plain scalar that is a JSON number: an int (int64 beyond int's
// range), else a uint64, else a float64. JSON's number syntax is within YAML's float syntax, and never a
// timestamp, so nothing else applies.
func yamlNumber(text string) (interface{}, bool) {
	if i, err := strconv.ParseInt(text, 0, 64); err == nil {
		if i == int64(int(i)) {
			return int(i), true
		}
		return i, true
	}
	if u, err := strconv.ParseUint(text, 0, 64); err == nil {
		return u, true
	}
	if f, err := strconv.ParseFloat(text, 64); err == nil {
		return f, true
	}
	return nil, false
}
