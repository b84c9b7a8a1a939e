package engine

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	helmengine "helm.sh/helm/v3/pkg/engine"
)

// repoEnv names the Chartproof checkout whose charts and scenarios the comparison renders (tests/
// test_render_server.py sets it; run in place, the checkout around this directory is used).
const repoEnv = "CHARTPROOF_REPO"

func repository(t *testing.T) string {
	if dir := os.Getenv(repoEnv); dir != "" {
		return dir
	}
	dir, err := filepath.Abs("../../../../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "charts", "adaptive", "Chart.yaml")); err != nil {
		t.Fatalf("no charts beside this source and %s unset: %v", repoEnv, err)
	}
	return dir
}

// prepareValues are the values a render of chrt with the values file at path (none: "") gets, as helm template
// prepares them; the chart's disabled dependencies are removed from chrt, as helm does.
func prepareValues(chrt *chart.Chart, path string) (chartutil.Values, error) {
	vals := map[string]interface{}{}
	if path != "" {
		read, err := chartutil.ReadValuesFile(path)
		if err != nil {
			return nil, err
		}
		vals = read
	}
	if err := chartutil.ProcessDependenciesWithMerge(chrt, vals); err != nil {
		return nil, err
	}
	options := chartutil.ReleaseOptions{Name: "release", Namespace: "ns", Revision: 1, IsInstall: true}
	return chartutil.ToRenderValues(chrt, vals, options, chartutil.DefaultCapabilities.Copy())
}

// renderValues is prepareValues, failing t where it fails.
func renderValues(t *testing.T, chrt *chart.Chart, path string) chartutil.Values {
	t.Helper()
	top, err := prepareValues(chrt, path)
	if err != nil {
		t.Fatal(err)
	}
	return top
}

// same fails t unless ours and helm's results are the same: every file's text, or the error's text.
func same(t *testing.T, what string, got map[string]string, gotErr error, want map[string]string, wantErr error) {
	t.Helper()
	if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
		t.Fatalf("%s: error %v, helm's %v", what, gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		for name := range want {
			if got[name] != want[name] {
				t.Fatalf("%s: %s differs from helm's:\n--- ours\n%s\n--- helm's\n%s", what, name, got[name], want[name])
			}
		}
		t.Fatalf("%s: files %v, helm's %v", what, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
	}
}

// TestTheRepositorysChartsRenderAsHelmRendersThem renders each chart of the repository under its defaults and
// every scenario of fixtures/CHART, with one Engine for the whole test (so later renders use parsed sets kept
// from earlier ones), and compares each result with helm's engine.Render of the same chart and values.
func TestTheRepositorysChartsRenderAsHelmRendersThem(t *testing.T) {
	repo := repository(t)
	ours := New()
	rendered := 0
	for _, name := range []string{"adaptive", "monitoring", "hyperpod"} {
		dir := filepath.Join(repo, "charts", name)
		scenarios, _ := filepath.Glob(filepath.Join(repo, "fixtures", name, "*.yaml"))
		ci, _ := filepath.Glob(filepath.Join(dir, "ci", "*-values.yaml"))
		for _, values := range append(append([]string{""}, scenarios...), ci...) {
			what := name + " " + filepath.Base(values)
			load := func() *chart.Chart {
				chrt, err := loader.Load(dir)
				if err != nil {
					t.Fatal(err)
				}
				return chrt
			}
			theirs := load()
			want, wantErr := helmengine.Engine{}.Render(theirs, renderValues(t, theirs, values))
			mine := load()
			got, gotErr := ours.Render(mine, renderValues(t, mine, values), false)
			same(t, what, got, gotErr, want, wantErr)
			if wantErr == nil && len(want) == 0 {
				t.Fatalf("%s: helm rendered no file", what)
			}
			rendered++
		}
	}
	if rendered < 20 {
		t.Fatalf("only %d renders compared: the charts or scenarios were not found", rendered)
	}
	if ours.Parses >= rendered {
		t.Fatalf("%d renders parsed %d template sets: the parsed sets were never reused", rendered, ours.Parses)
	}
}

// TestHelmsOwnTestChartsRenderAsHelmRendersThem renders every chart of helm's own test data (its module's
// source, as the Go module cache holds it: library charts, aliases, import-values, packaged dependencies, charts
// that fail) under their defaults, and compares each result and error with helm's engine.Render.
func TestHelmsOwnTestChartsRenderAsHelmRendersThem(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "helm.sh/helm/v3").Output()
	if err != nil {
		t.Fatalf("go list -m helm.sh/helm/v3: %v", err)
	}
	var charts []string
	_ = filepath.Walk(strings.TrimSpace(string(out)), func(p string, info os.FileInfo, err error) error {
		if err != nil || strings.Contains(filepath.ToSlash(p), "/charts/") {
			return nil // a dependency is rendered with its parent
		}
		if info.Name() == "Chart.yaml" {
			charts = append(charts, filepath.Dir(p))
		} else if strings.HasSuffix(p, ".tgz") {
			charts = append(charts, p)
		}
		return nil
	})
	ours := New()
	compared := 0
	for _, path := range charts {
		theirs, err := loader.Load(path)
		if err != nil {
			continue // not a loadable chart (helm's tests of broken archives)
		}
		mine, _ := loader.Load(path)
		theirVals, err := prepareValues(theirs, "")
		if err != nil {
			continue // helm refuses its values or dependencies before any render
		}
		myVals, _ := prepareValues(mine, "")
		want, wantErr := helmengine.Engine{}.Render(theirs, theirVals)
		got, gotErr := ours.Render(mine, myVals, false)
		same(t, path, got, gotErr, want, wantErr)
		compared++
	}
	if compared < 50 {
		t.Fatalf("only %d of helm's test charts compared (of %d found)", compared, len(charts))
	}
}

func file(name, text string) *chart.File { return &chart.File{Name: name, Data: []byte(text)} }

func newChart(name, kind string, templates []*chart.File, values map[string]interface{}, deps ...*chart.Chart) *chart.Chart {
	c := &chart.Chart{Metadata: &chart.Metadata{APIVersion: "v2", Name: name, Version: "0.1.0", Type: kind},
		Templates: templates, Values: values,
		Files: []*chart.File{file("files/a.conf", "a=1\nb=2\n"), file("files/b.bin", "\x00\x01"), file("README.md", "hi")}}
	for _, dep := range deps {
		c.AddDependency(dep)
	}
	return c
}

// TestSmallChartsRenderAsHelmRendersThem compares results and errors with helm's engine on charts made for one
// behaviour each, every chart rendered twice by the same Engine (the second time from its parsed set).
func TestSmallChartsRenderAsHelmRendersThem(t *testing.T) {
	cases := map[string]string{
		"missing values":  `a: {{ .Values.missing }} b: {{ index .Values "nope" }} c: {{ .Values.nested.none }}`,
		"values and meta": `{{ .Values.name }} {{ .Release.Name }} {{ .Release.Namespace }} {{ .Chart.Name }} {{ .Chart.IsRoot }} {{ .Capabilities.KubeVersion.Version }}`,
		"template info":   `{{ .Template.Name }} {{ .Template.BasePath }}`,
		"types":           `{{ typeOf .Files }} {{ printf "%T" .Chart }} {{ typeOf . }} {{ typeOf .Values }} {{ typeOf .Subcharts }}`,
		"parse error":     "line1\n{{ if }}",
		"unknown func":    `{{ env "HOME" }}`,
		"exec error":      `{{ .Values.name.inner }}`,
		"required":        `{{ required "name2 is required" .Values.name2 }}`,
		"required empty":  `{{ required "empty is required" .Values.empty }}`,
		"required set":    `{{ required "fine" .Values.name }}`,
		"fail":            "x\n  {{ fail \"stop here\" }}",
		"recursion":       `{{ define "loop" }}{{ include "loop" . }}{{ end }}{{ include "loop" . }}`,
		"include":         `{{ define "inner" }}[{{ .Values.name }}]{{ end }}{{ include "inner" . | upper }} {{ include "sub.helper" . }}`,
		"tpl":             `{{ tpl "{{ define \"t\" }}in {{ .Values.name }}{{ end }}{{ include \"t\" . }}" . }} {{ tpl .Values.tmpl . }}`,
		"tpl parse error": `{{ tpl "{{ if }}" . }}`,
		"tpl exec error":  `{{ tpl "{{ .Values.name.inner }}" . }}`,
		"tpl missing":     `{{ tpl "[{{ .Values.none }}]" . }}`,
		"files":           `{{ .Files.Get "files/a.conf" }}|{{ .Files.GetBytes "files/b.bin" }}|{{ .Files.Get "nope" }}|{{ range .Files.Lines "files/a.conf" }}<{{ . }}>{{ end }}`,
		"files glob":      "{{ (.Files.Glob \"files/*\").AsConfig }}\n{{ (.Files.Glob \"files/**\").AsSecrets }}\n{{ (.Files.Glob \"[\").AsConfig }}",
		"dns off":         `[{{ getHostByName "localhost" }}]`,
		"lookup":          `{{ lookup "v1" "Pod" "ns" "x" | toYaml }}`,
		"conversions":     "{{ toYaml .Values }}\n{{ toYamlPretty .Values }}\n{{ toJson .Values }}\n{{ toToml .Values }}",
		"parsers":         `{{ fromYaml "a: [1" | toJson }} {{ fromYamlArray "- 1\n- b" | toJson }} {{ fromJson "{" | toJson }} {{ fromJsonArray "[1,2]" | toJson }} {{ fromToml "a = 1" | toJson }} {{ fromToml "=" | toJson }}`,
		"panic in func":   `{{ div 1 0 }}`,
		"set mutates":     `{{ $_ := set .Values "added" "yes" }}{{ .Values.added }}`,
		// _helpers.tpl and nested/deeper.yaml define parent.x too; the file parsed last wins: helm's parse order.
		"redefined": `{{ define "parent.x" }}y{{ end }}{{ include "parent.x" . }}`,
	}
	values := map[string]interface{}{"name": "demo", "empty": "", "tmpl": "name is {{ .Values.name }}",
		"sub":    map[string]interface{}{"greeting": "hello", "n": 3},
		"nested": map[string]interface{}{}, "float": 1.5, "big": 1e21, "int": 7}
	sub := func() *chart.Chart {
		return newChart("sub", "", []*chart.File{
			file("templates/_helpers.tpl", `{{ define "sub.helper" }}sub sees {{ .Values.greeting }}{{ end }}`),
			file("templates/cm.yaml", "greeting: {{ .Values.greeting }} n: {{ .Values.n }} root: {{ .Chart.IsRoot }} {{ .Template.BasePath }}"),
			file("templates/NOTES.txt", "notes of {{ .Chart.Name }}"),
		}, map[string]interface{}{"greeting": "default", "n": 1})
	}
	library := func() *chart.Chart {
		return newChart("lib", "library", []*chart.File{
			file("templates/_lib.tpl", `{{ define "lib.name" }}lib{{ end }}`),
			file("templates/ignored.yaml", "never rendered"),
		}, nil)
	}
	ours := New()
	for name, text := range cases {
		for round := 0; round < 2; round++ {
			build := func() (*chart.Chart, chartutil.Values) {
				c := newChart("parent", "", []*chart.File{
					file("templates/_helpers.tpl", `{{ define "parent.x" }}x{{ end }}`),
					file("templates/case.yaml", text),
					file("templates/nested/deeper.yaml", `{{ define "parent.x" }}z{{ end }}{{ include "lib.name" . }} {{ .Subcharts.sub.Values.greeting }}`),
				}, values, sub(), library())
				return c, renderValues(t, c, "")
			}
			theirs, theirVals := build()
			want, wantErr := helmengine.Engine{}.Render(theirs, theirVals)
			mine, myVals := build()
			got, gotErr := ours.Render(mine, myVals, false)
			same(t, name, got, gotErr, want, wantErr)
		}
	}
	if ours.Parses != len(cases) {
		t.Fatalf("%d cases rendered twice parsed %d template sets, not one each", len(cases), ours.Parses)
	}
}

// TestAChangedTemplateIsParsedAgain: a template set is reused only for the same names and texts.
func TestAChangedTemplateIsParsedAgain(t *testing.T) {
	ours := New()
	for _, text := range []string{"one {{ .Values.a }}", "two {{ .Values.a }}", "one {{ .Values.a }}"} {
		c := newChart("c", "", []*chart.File{file("templates/a.yaml", text)}, map[string]interface{}{"a": "v"})
		got, err := ours.Render(c, renderValues(t, c, ""), false)
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.Replace(text, "{{ .Values.a }}", "v", 1); got["c/templates/a.yaml"] != want {
			t.Fatalf("rendered %q, expected %q", got["c/templates/a.yaml"], want)
		}
	}
	if ours.Parses != 2 {
		t.Fatalf("three renders of two texts parsed %d sets, expected 2", ours.Parses)
	}
}

// TestAHashCollisionIsNoHit: a set kept under the same key but for other texts is not used.
func TestAHashCollisionIsNoHit(t *testing.T) {
	ours := New()
	render := func(text string) string {
		c := newChart("c", "", []*chart.File{file("templates/a.yaml", text)}, nil)
		got, err := ours.Render(c, renderValues(t, c, ""), false)
		if err != nil {
			t.Fatal(err)
		}
		return got["c/templates/a.yaml"]
	}
	render("first")
	collided := ours.key([]string{"c/templates/a.yaml"}, []string{"second"})
	first, _ := ours.parsed.Get(ours.key([]string{"c/templates/a.yaml"}, []string{"first"}))
	ours.parsed.Put(collided, first, 0) // the first text's set, filed under the second's key
	if got := render("second"); got != "second" {
		t.Fatalf("rendered %q: the set kept for another text was used", got)
	}
}

// TestDNSLookupsFollowTheRequest: with DNS on, getHostByName is sprig's, as in helm's engine with EnableDNS.
func TestDNSLookupsFollowTheRequest(t *testing.T) {
	text := `[{{ getHostByName "localhost" }}]`
	c := newChart("c", "", []*chart.File{file("templates/a.yaml", text)}, nil)
	want, wantErr := helmengine.Engine{EnableDNS: true}.Render(c, renderValues(t, c, ""))
	ours := New()
	got, gotErr := ours.Render(c, renderValues(t, c, ""), true)
	same(t, "dns on", got, gotErr, want, wantErr)
	off, _ := ours.Render(c, renderValues(t, c, ""), false)
	if off["c/templates/a.yaml"] != "[]" {
		t.Fatalf("with DNS off getHostByName gave %q", off["c/templates/a.yaml"])
	}
}
