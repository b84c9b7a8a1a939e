package engine

import (
	"encoding/json"
	"math"
	"math/rand"
	"strings"
	"testing"

	sigsyaml "sigs.k8s.io/yaml"
)

// sameAsSigs fails t unless marshalYAML(v) is sigs.k8s.io/yaml.Marshal(v), errors included; it reports whether
// marshalYAML took its own path (readJSON) rather than sigs.k8s.io/yaml's.
func sameAsSigs(t *testing.T, v interface{}) bool {
	t.Helper()
	want, wantErr := sigsyaml.Marshal(v)
	got, gotErr := marshalYAML(v)
	if (gotErr == nil) != (wantErr == nil) || string(got) != string(want) {
		t.Fatalf("marshalYAML(%#v) = %q, %v; sigs.k8s.io/yaml: %q, %v", v, got, gotErr, want, wantErr)
	}
	if gotErr != nil {
		return false
	}
	j, _ := json.Marshal(v)
	_, own := readJSON(j)
	return own
}

type labelled struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	Skip   string            `json:"-"`
	Count  int64
}

func TestToYAMLIsSigsYAMLOnEdgeCases(t *testing.T) {
	own := 0
	cases := []interface{}{
		nil, "", "plain", "true", "1", "1.0", "null", "~", "yes", "0x1F", "1e3", "2001-12-14", "- a", "a: b", "#c",
		" lead", "trail ", "multi\nline\n", "tab\there", "cr\r\nlf", "quote\"s and 'single'", `back\slash`,
		"<html>&", "é中😀", "\u2028\u2029", "\x00\x01\x1f", "del\x7f", "nel\u0085", "c1\u0090", "bom\ufeff",
		"\ufffe", "\uffff", "\ufffd", string([]byte{0xff, 0xfe}),
		0, -0.0, 7, -7, int64(math.MaxInt64), int64(math.MinInt64), uint64(math.MaxUint64), int64(9007199254740993),
		1.5, 0.1, 1e20, 1e21, 1e-6, 1e-7, 123456789.123, math.MaxFloat64, math.SmallestNonzeroFloat64, float32(0.1),
		true, false, []interface{}{}, map[string]interface{}{}, []string(nil), map[string]string(nil),
		[]interface{}{1, "a", nil, []interface{}{map[string]interface{}{}}},
		map[string]interface{}{"b": 1, "a": map[string]interface{}{"10": 1, "9": 2, "x1": 3, "X": 4, "_": 5, "": 6}},
		map[string]interface{}{strings.Repeat("k", 128): 1}, map[string]interface{}{strings.Repeat("k", 129): 1},
		map[string]interface{}{strings.Repeat("\x01", 128): 1}, map[string]interface{}{strings.Repeat("k", 2000): "v"},
		map[string]interface{}{"long": strings.Repeat("v ", 3000)},
		labelled{Name: "n", Labels: map[string]string{"app": "x"}, Skip: "s", Count: 3},
		map[string][]byte{"bytes": []byte("\x00abc")}, map[int]string{2: "b", 10: "a"},
		map[string]interface{}{"nan": "NaN", "inf": ".inf"}, math.Inf(1), func() {}, make(chan int),
	}
	for _, v := range cases {
		if sameAsSigs(t, v) {
			own++
		}
	}
	// Nesting around both readers' limits (10000 levels): sigs.k8s.io/yaml's answer at each depth, error or text.
	for _, levels := range []int{1500, 9998, 9999, 10000, 10001, 10002} {
		deep := interface{}("leaf")
		for i := 0; i < levels; i++ {
			deep = []interface{}{deep}
		}
		sameAsSigs(t, deep)
	}
	if own < len(cases)/2 {
		t.Fatalf("only %d of %d cases took marshalYAML's own path", own, len(cases))
	}
}

// TestToYAMLIsSigsYAMLOnRandomTrees compares 20,000 random values trees, their strings drawn from characters
// that YAML and JSON treat specially.
func TestToYAMLIsSigsYAMLOnRandomTrees(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	alphabet := []string{"a", "Z", "0", "9", " ", ":", "-", "#", "'", "\"", "\\", "\n", "\t", "\r", "é", "中", "😀",
		"\u0085", "\u007f", "\u2028", "\ufeff", "\x00", "\x1b", "{", "[", "&", "*", "!", "|", ">", "%", "@", "`", "y", "n",
		"true", "null", "1e5", "0o7", "0x", "."}
	var str func() string
	str = func() string {
		var b strings.Builder
		for n := rng.Intn(6); n > 0; n-- {
			b.WriteString(alphabet[rng.Intn(len(alphabet))])
		}
		return b.String()
	}
	scalars := []func() interface{}{
		func() interface{} { return str() },
		func() interface{} { return rng.Intn(2000) - 1000 },
		func() interface{} { return rng.Int63() * int64(1-2*rng.Intn(2)) },
		func() interface{} { return rng.Uint64() },
		func() interface{} { return rng.NormFloat64() * math.Pow(10, float64(rng.Intn(60)-30)) },
		func() interface{} { return float64(rng.Intn(100)) },
		func() interface{} { return rng.Intn(2) == 0 },
		func() interface{} { return nil },
	}
	var tree func(depth int) interface{}
	tree = func(depth int) interface{} {
		switch k := rng.Intn(10); {
		case depth > 3 || k < 6:
			return scalars[rng.Intn(len(scalars))]()
		case k < 8:
			m := map[string]interface{}{}
			for n := rng.Intn(5); n > 0; n-- {
				m[str()] = tree(depth + 1)
			}
			return m
		default:
			l := []interface{}{}
			for n := rng.Intn(5); n > 0; n-- {
				l = append(l, tree(depth+1))
			}
			return l
		}
	}
	own := 0
	for i := 0; i < 20000; i++ {
		if sameAsSigs(t, tree(0)) {
			own++
		}
	}
	if own < 5000 {
		t.Fatalf("only %d of 20000 trees took marshalYAML's own path", own)
	}
}
