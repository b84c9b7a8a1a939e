// Package engine renders a chart's templates as helm's own engine (helm.sh/helm/v3/pkg/engine, at the pinned
// helm's version) does for `helm template`: client-only (`lookup` finds nothing), not strict, not lint mode.
//
// It differs from helm's engine in cost, not in output:
//   - a chart's templates are parsed once. Helm parses every template file on every render; here the parsed
//     set is kept per set of template names and texts, and a render executes a clone of it, with `include`
//     and `tpl` bound to that clone, as helm binds them to its fresh set;
//   - `toYaml` takes a shorter path to the same text (yaml.go).
//
// The package is named engine, as helm's is, so that a template printing the type of `.Files` sees
// "engine.files" here too. engine_test.go holds Render to helm's engine.Render, output and errors, on the
// repository's charts under their scenarios and on a corpus of small charts.
package engine

import (
	"errors"
	"fmt"
	"hash/maphash"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"text/template"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"

	"chartproof.local/tools/chartproof-render/memo"
)

const (
	failStart = "HELM_ERR_START" // helm wraps the messages of `required` and `fail` in these
	failEnd   = "HELM_ERR_END"
	// includeLimit is how deep helm lets a template include itself.
	includeLimit = 1000
	// parsedLimit bounds the template text whose parsed sets are kept (the memo starts again beyond it).
	parsedLimit = 32 << 20
)

var failMessage = regexp.MustCompile(failStart + `((?s).*)` + failEnd)

func wrapFailure(msg string) error { return errors.New(failStart + msg + failEnd) }

// Engine keeps the parsed template sets of the charts it has rendered. It is not safe for concurrent use.
type Engine struct {
	seed   maphash.Seed
	parsed *memo.Bounded[uint64, []*parsedSet] // by key(names, texts); more than one where hashes collide
	funcs  template.FuncMap                    // every function a template may name, bound to nothing (see baseFuncs)
	Parses int                                 // template sets parsed (for tests: a second render of the same chart parses none)
}

// New returns an Engine with an empty memo.
func New() *Engine {
	return &Engine{seed: maphash.MakeSeed(), parsed: memo.New[uint64, []*parsedSet](parsedLimit), funcs: baseFuncs()}
}

// source is one template file: its text, the values it is executed with, and its chart's templates path.
type source struct {
	text     string
	vals     chartutil.Values
	basePath string
}

// parsedSet is every template file of a render, parsed in helm's order into one template set.
type parsedSet struct {
	names []string // in parse order
	texts []string
	root  *template.Template
	err   error // the first parse error, as helm words it
}

// Render is helm's engine.Render(chrt, values) for `helm template` (its --enable-dns as enableDNS): the text
// of every template file that is not a partial, by path.
func (e *Engine) Render(chrt *chart.Chart, values chartutil.Values, enableDNS bool) (rendered map[string]string, err error) {
	defer func() {
		if r := recover(); r != nil {
			rendered, err = map[string]string{}, fmt.Errorf("rendering template failed: %v", r)
		}
	}()
	sources := map[string]source{}
	scope(chrt, sources, values)
	names := parseOrder(sources)
	set := e.parse(names, sources)
	if set.err != nil {
		return map[string]string{}, set.err
	}
	t, err := set.root.Clone()
	if err != nil {
		return map[string]string{}, err
	}
	included := map[string]int{}
	overrides := template.FuncMap{"include": include(t, included), "tpl": tpl(t, included)}
	if !enableDNS {
		overrides["getHostByName"] = func(string) string { return "" }
	}
	t.Funcs(overrides)

	rendered = make(map[string]string, len(names))
	for _, name := range names {
		if strings.HasPrefix(path.Base(name), "_") {
			continue // a partial: only ever included
		}
		src := sources[name]
		src.vals["Template"] = chartutil.Values{"Name": name, "BasePath": src.basePath}
		var out strings.Builder
		if err := t.ExecuteTemplate(&out, name, src.vals); err != nil {
			return map[string]string{}, execError(name, err)
		}
		// missingkey=zero still prints "<no value>" for a missing key of an interface-valued map; helm drops it.
		rendered[name] = strings.ReplaceAll(out.String(), "<no value>", "")
	}
	return rendered, nil
}

// parse returns the parsed set of these files, from the memo when the same names and texts were parsed before.
func (e *Engine) parse(names []string, sources map[string]source) *parsedSet {
	texts := make([]string, len(names))
	size := 0
	for i, name := range names {
		texts[i] = sources[name].text
		size += len(texts[i])
	}
	key := e.key(names, texts)
	kept, _ := e.parsed.Get(key)
	for _, set := range kept {
		if slices.Equal(set.names, names) && slices.Equal(set.texts, texts) {
			return set
		}
	}
	set := &parsedSet{names: names, texts: texts, root: template.New("gotpl")}
	set.root.Option("missingkey=zero")
	set.root.Funcs(e.funcs)
	for i, name := range names {
		if _, err := set.root.New(name).Parse(texts[i]); err != nil {
			set.err = parseError(name, err)
			break
		}
	}
	e.Parses++
	e.parsed.Put(key, append(kept, set), size)
	return set
}

// key is the memo's key for these files: a hash of their names and texts (a hit is checked against both).
func (e *Engine) key(names, texts []string) uint64 {
	var h maphash.Hash
	h.SetSeed(e.seed)
	for i, name := range names {
		h.WriteString(name)
		h.WriteByte(0)
		h.WriteString(texts[i])
		h.WriteByte(0)
	}
	return h.Sum64()
}

// include is the `include` function of a render: execute the named template of t into a string. A template
// that includes itself more than includeLimit deep stops the render.
func include(t *template.Template, included map[string]int) func(string, interface{}) (string, error) {
	return func(name string, data interface{}) (string, error) {
		if included[name] > includeLimit {
			return "", fmt.Errorf("rendering template has a nested reference name: %s: unable to execute template", name)
		}
		included[name]++
		var out strings.Builder
		err := t.ExecuteTemplate(&out, name, data)
		included[name]--
		return out.String(), err
	}
}

// tpl is the `tpl` function of a render: parse a string as a template beside the templates of parent (so that
// it may include them, and they see what it defines) and execute it.
func tpl(parent *template.Template, included map[string]int) func(string, interface{}) (string, error) {
	return func(text string, vals interface{}) (string, error) {
		t, err := parent.Clone()
		if err != nil {
			return "", fmt.Errorf("cannot clone template: %w", err)
		}
		t.Option("missingkey=zero")
		t.Funcs(template.FuncMap{"include": include(t, included), "tpl": tpl(t, included)})
		// A template of its own: text that only defines templates would otherwise leave the set's root as it was.
		t, err = t.New(parent.Name()).Parse(text)
		if err != nil {
			return "", fmt.Errorf("cannot parse template %q: %w", text, err)
		}
		var out strings.Builder
		if err := t.Execute(&out, vals); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %w", text, err)
		}
		return strings.ReplaceAll(out.String(), "<no value>", ""), nil
	}
}

// parseError words a parse error as helm does: "parse error at (FILE:LINE): MESSAGE".
func parseError(name string, err error) error {
	parts := strings.Split(err.Error(), ": ")
	if len(parts) == 1 {
		return fmt.Errorf("parse error in (%s): %s", name, err)
	}
	return fmt.Errorf("parse error at (%s): %s", parts[1], parts[len(parts)-1])
}

// execError words an execution error as helm does: the message of a `required` or `fail` at its location,
// anything else as text/template wrote it.
func execError(name string, err error) error {
	if _, ok := err.(template.ExecError); !ok {
		return err
	}
	parts := strings.SplitN(err.Error(), ": ", 3)
	if len(parts) != 3 {
		return fmt.Errorf("execution error in (%s): %s", name, err)
	}
	if found := failMessage.FindStringSubmatch(parts[2]); len(found) >= 2 {
		return fmt.Errorf("execution error at (%s): %s", parts[1], found[1])
	}
	return err
}

// parseOrder is the order helm parses (and executes) the files in: deeper paths first, then by path, descending.
func parseOrder(sources map[string]source) []string {
	names := make([]string, 0, len(sources))
	for name := range sources {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := names[i], names[j]
		if da, db := strings.Count(a, "/"), strings.Count(b, "/"); da != db {
			return da > db
		}
		return a > b
	})
	return names
}

// scope adds the template files of c and its dependencies to sources, each with the values of its own chart:
// the chart's metadata, files, release, capabilities, its part of the parent's values (all of them at the
// root) and the scopes of its subcharts. It returns c's scope.
func scope(c *chart.Chart, sources map[string]source, parent chartutil.Values) map[string]interface{} {
	subcharts := map[string]interface{}{}
	own := map[string]interface{}{
		"Chart": struct {
			chart.Metadata
			IsRoot bool
		}{*c.Metadata, c.IsRoot()},
		"Files":        newFiles(c.Files),
		"Release":      parent["Release"],
		"Capabilities": parent["Capabilities"],
		"Values":       make(chartutil.Values),
		"Subcharts":    subcharts,
	}
	if c.IsRoot() {
		own["Values"] = parent["Values"]
	} else if values, err := parent.Table("Values." + c.Name()); err == nil {
		own["Values"] = values
	}
	for _, dep := range c.Dependencies() {
		subcharts[dep.Name()] = scope(dep, sources, own)
	}
	library := strings.EqualFold(c.Metadata.Type, "library")
	prefix := c.ChartFullPath()
	for _, file := range c.Templates {
		if file == nil || (library && !strings.HasPrefix(path.Base(file.Name), "_")) {
			continue // a library chart renders nothing of its own
		}
		sources[path.Join(prefix, file.Name)] = source{text: string(file.Data), vals: own,
			basePath: path.Join(prefix, "templates")}
	}
	return own
}
