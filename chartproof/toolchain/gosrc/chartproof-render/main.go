// Command chartproof-render is a long-lived `helm template`: it reads one JSON request per line on stdin,
// renders it with the Helm SDK it links (the same version as the pinned helm), and writes one JSON reply per
// line on stdout. A reply carries what `helm template` would have printed: its stdout, its stderr and its
// exit code. Each chart directory is loaded once and kept in memory until one of its files changes.
//
// The process ends when stdin closes, so it never outlives the program that started it.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"

	"chartproof.local/tools/chartproof-render/engine"
	"chartproof.local/tools/chartproof-render/memo"
)

// version is stamped at build time (-X main.version=...).
var version = "dev"

// request is one `helm template RELEASE CHART [flags]`, with the flags as fields.
type request struct {
	ID                   int      `json:"id"`
	Cwd                  string   `json:"cwd"` // the directory relative paths are read from, as helm's would be
	Chart                string   `json:"chart"`
	Release              string   `json:"release"`
	Namespace            string   `json:"namespace"`
	Values               []string `json:"values"`
	Set                  []string `json:"set"`
	SetString            []string `json:"set_string"`
	SetJSON              []string `json:"set_json"`
	SetFile              []string `json:"set_file"`
	SetLiteral           []string `json:"set_literal"`
	KubeVersion          string   `json:"kube_version"`
	APIVersions          []string `json:"api_versions"`
	ShowOnly             []string `json:"show_only"`
	IncludeCRDs          bool     `json:"include_crds"`
	SkipTests            bool     `json:"skip_tests"`
	NoHooks              bool     `json:"no_hooks"`
	IsUpgrade            bool     `json:"is_upgrade"`
	SkipSchemaValidation bool     `json:"skip_schema_validation"`
	EnableDNS            bool     `json:"enable_dns"`
	// LoadOnly reads the chart into memory (if not already) and renders nothing: a warm-up before the first render.
	LoadOnly bool `json:"load_only"`
}

// reply is what helm would have printed for the request.
type reply struct {
	ID     int    `json:"id"`
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	Exit   int    `json:"exit"`
	// Loaded is true when the chart was read from disk for this request (first use, or files changed).
	Loaded bool `json:"loaded"`
}

// loadedChart is a chart directory as read from disk, with the stamp of its files at that time.
type loadedChart struct {
	stamp string
	chart *chart.Chart
	log   string // what loading wrote to helm's log (symlink notices), repeated on every render
}

type renderer struct {
	settings *cli.EnvSettings
	charts   map[string]*loadedChart
	logs     bytes.Buffer
	sorted   *memo.Bounded[string, *sortedFile] // by path and content
	heads    headReader
	schemas  *memo.Bounded[string, *jsonschema.Schema] // compiled, by their text
	engine   *engine.Engine
}

var sourceLine = regexp.MustCompile("# Source: [^/]+/(.+)")

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "version") {
		fmt.Printf("chartproof-render %s\n", version)
		return
	}
	if len(os.Args) > 1 {
		fmt.Fprintf(os.Stderr, "usage: chartproof-render [--version]  (requests: JSON lines on stdin)\n")
		os.Exit(2)
	}
	// A render allocates much and keeps little: collecting less often halves the time spent in the collector.
	debug.SetGCPercent(400)
	// CHARTPROOF_RENDER_CPUPROFILE=FILE writes a Go CPU profile of the whole session (for `go tool pprof`).
	if path := os.Getenv("CHARTPROOF_RENDER_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	r := &renderer{settings: cli.New(), charts: map[string]*loadedChart{}, sorted: memo.New[string, *sortedFile](sortMemoLimit),
		heads: newHeadReader(), schemas: memo.New[string, *jsonschema.Schema](schemaMemoLimit), engine: engine.New()}
	// helm's own log settings, so that any warning reads as helm prints it.
	log.SetFlags(log.Lshortfile)
	log.SetOutput(&r.logs)

	in := json.NewDecoder(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	out.SetEscapeHTML(false)
	for {
		var req request
		if err := in.Decode(&req); err != nil {
			if err == io.EOF {
				return // deferred: the profile is written
			}
			fmt.Fprintf(os.Stderr, "chartproof-render: bad request: %v\n", err)
			os.Exit(2)
		}
		if err := out.Encode(r.render(&req)); err != nil {
			fmt.Fprintf(os.Stderr, "chartproof-render: cannot answer: %v\n", err)
			os.Exit(1)
		}
	}
}

// render answers one request the way `helm template` does, in the same order of checks.
func (r *renderer) render(req *request) reply {
	r.logs.Reset()
	var stdout, stderr bytes.Buffer
	loaded, err := r.template(req, &stdout, &stderr)
	answer := reply{ID: req.ID, Loaded: loaded}
	stderr.Write(r.logs.Bytes())
	if err != nil {
		// cobra's report of a failed command, as helm prints it.
		fmt.Fprintln(&stderr, "Error:", err.Error())
		answer.Exit = 1
	}
	answer.Stdout = stdout.String()
	answer.Stderr = stderr.String()
	return answer
}

func (r *renderer) template(req *request, stdout, stderr *bytes.Buffer) (bool, error) {
	if req.Cwd != "" {
		if err := os.Chdir(req.Cwd); err != nil {
			return false, err
		}
	}
	client := action.NewInstall(&action.Configuration{Log: func(string, ...interface{}) {}})
	if req.KubeVersion != "" {
		kube, err := chartutil.ParseKubeVersion(req.KubeVersion)
		if err != nil {
			return false, fmt.Errorf("invalid kube version '%s': %s", req.KubeVersion, err)
		}
		client.KubeVersion = kube
	}
	client.DryRunOption = "true"
	client.DryRun = true
	client.Replace = true
	client.ClientOnly = true
	client.APIVersions = chartutil.VersionSet(req.APIVersions)
	client.IncludeCRDs = req.IncludeCRDs
	client.DisableHooks = req.NoHooks
	client.IsUpgrade = req.IsUpgrade
	client.SkipSchemaValidation = req.SkipSchemaValidation
	client.EnableDNS = req.EnableDNS
	client.ReleaseName = req.Release
	client.Namespace = req.Namespace
	if client.Namespace == "" {
		client.Namespace = "default"
	}

	path, err := client.ChartPathOptions.LocateChart(req.Chart, r.settings)
	if err != nil {
		return false, err
	}
	if req.LoadOnly {
		_, loaded, err := r.load(path)
		return loaded, err
	}
	options := values.Options{
		ValueFiles: req.Values, Values: req.Set, StringValues: req.SetString, JSONValues: req.SetJSON,
		FileValues: req.SetFile, LiteralValues: req.SetLiteral,
	}
	vals, err := options.MergeValues(getter.All(r.settings))
	if err != nil {
		return false, err
	}
	chrt, loaded, err := r.load(path)
	if err != nil {
		return loaded, err
	}
	switch chrt.Metadata.Type {
	case "", "application":
	default:
		return loaded, fmt.Errorf("%s charts are not installable", chrt.Metadata.Type)
	}
	if chrt.Metadata.Deprecated {
		fmt.Fprintln(stderr, "WARNING: This chart is deprecated")
	}
	if deps := chrt.Metadata.Dependencies; deps != nil {
		if err := action.CheckDependencies(chrt, deps); err != nil {
			return loaded, fmt.Errorf("An error occurred while checking for chart dependencies. "+
				"You may need to run `helm dependency build` to fetch missing dependencies: %w", err)
		}
	}

	rel, err := r.run(client, chrt, vals)
	if err != nil {
		if rel != nil {
			return loaded, fmt.Errorf("%w\n\nUse --debug flag to render out invalid YAML", err)
		}
		return loaded, err
	}
	return loaded, write(rel, req, stdout)
}

// write prints the release as `helm template` does: the manifest, then the hooks, or only the chosen templates.
func write(rel *release.Release, req *request, stdout *bytes.Buffer) error {
	var all bytes.Buffer
	fmt.Fprintln(&all, strings.TrimSpace(rel.Manifest))
	if !req.NoHooks {
		for _, hook := range rel.Hooks {
			if req.SkipTests && isTest(hook) {
				continue
			}
			fmt.Fprintf(&all, "---\n# Source: %s\n%s\n", hook.Path, hook.Manifest)
		}
	}
	if len(req.ShowOnly) == 0 {
		stdout.Write(all.Bytes())
		return nil
	}
	documents := releaseutil.SplitManifests(all.String())
	keys := make([]string, 0, len(documents))
	for key := range documents {
		keys = append(keys, key)
	}
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	var chosen []string
	for _, pattern := range req.ShowOnly {
		pattern = filepath.ToSlash(pattern)
		found := false
		for _, key := range keys {
			match := sourceLine.FindStringSubmatch(documents[key])
			if match == nil {
				continue
			}
			if ok, _ := filepath.Match(pattern, match[1]); ok {
				chosen = append(chosen, documents[key])
				found = true
			}
		}
		if !found {
			return fmt.Errorf("could not find template %s in chart", pattern)
		}
	}
	for _, document := range chosen {
		fmt.Fprintf(stdout, "---\n%s\n", document)
	}
	return nil
}

func isTest(hook *release.Hook) bool {
	for _, event := range hook.Events {
		if event == release.HookTest {
			return true
		}
	}
	return false
}

// load returns a private copy of the chart at path (rendering changes a chart: disabled subcharts are dropped,
// import-values merged), reading the directory again only when its stamp changed. The bool says it was read.
func (r *renderer) load(path string) (*chart.Chart, bool, error) {
	stamp, err := treeStamp(path)
	if err != nil {
		stamp = "" // unreadable: let the loader report it
	}
	cached := r.charts[path]
	loaded := false
	if cached == nil || stamp == "" || cached.stamp != stamp {
		before := r.logs.Len()
		chrt, err := loader.Load(path)
		if err != nil {
			delete(r.charts, path)
			return nil, true, err
		}
		cached = &loadedChart{stamp: stamp, chart: chrt, log: r.logs.String()[before:]}
		r.charts[path] = cached
		loaded = true
	} else {
		r.logs.WriteString(cached.log)
	}
	copied, err := cloneChart(cached.chart)
	return copied, loaded, err
}

// cloneChart copies everything a render may change: metadata (dependency flags, aliases, import-values),
// values, and the tree of subcharts. Template and file contents are shared: rendering only reads them.
func cloneChart(c *chart.Chart) (*chart.Chart, error) {
	out := *c
	if c.Metadata != nil {
		meta := *c.Metadata
		meta.Dependencies = nil
		for _, dep := range c.Metadata.Dependencies {
			if dep == nil {
				meta.Dependencies = append(meta.Dependencies, nil)
				continue
			}
			d := *dep
			d.Tags = append([]string(nil), dep.Tags...)
			d.ImportValues = append([]interface{}(nil), dep.ImportValues...)
			meta.Dependencies = append(meta.Dependencies, &d)
		}
		out.Metadata = &meta
	}
	if c.Values != nil {
		out.Values = copyTree(c.Values).(map[string]interface{})
	}
	out.Templates = append([]*chart.File(nil), c.Templates...)
	out.Files = append([]*chart.File(nil), c.Files...)
	out.Raw = append([]*chart.File(nil), c.Raw...)
	var subcharts []*chart.Chart
	for _, sub := range c.Dependencies() {
		copied, err := cloneChart(sub)
		if err != nil {
			return nil, err
		}
		subcharts = append(subcharts, copied)
	}
	out.SetDependencies(subcharts...)
	return &out, nil
}

// copyTree deep-copies decoded YAML (maps, lists, scalars); scalars are immutable and shared.
func copyTree(value interface{}) interface{} {
	switch v := value.(type) {
	case map[string]interface{}:
		out := make(map[string]interface{}, len(v))
		for key, item := range v {
			out[key] = copyTree(item)
		}
		return out
	case []interface{}:
		out := make([]interface{}, len(v))
		for i, item := range v {
			out[i] = copyTree(item)
		}
		return out
	default:
		return v
	}
}

// treeStamp fingerprints a chart directory by the path, size, mode and modification time of every entry,
// following symbolic links as helm's loader does. A single file (a packaged chart) is stamped alone.
func treeStamp(root string) (string, error) {
	var b strings.Builder
	var walk func(dir, rel string, depth int) error
	walk = func(dir, rel string, depth int) error {
		if depth > 64 {
			return fmt.Errorf("%s: too deeply nested (a symlink loop?)", dir)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, entry := range entries {
			full := filepath.Join(dir, entry.Name())
			info, err := os.Stat(full)
			if err != nil {
				return err
			}
			name := filepath.Join(rel, entry.Name())
			fmt.Fprintf(&b, "%s\x00%d\x00%d\x00%d\n", name, info.Size(), info.Mode(), info.ModTime().UnixNano())
			if info.IsDir() {
				if err := walk(full, name, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	info, err := os.Stat(root)
	if err != nil {
		return "", err
	}
	if !info.IsDir() {
		return fmt.Sprintf("%d\x00%d", info.Size(), info.ModTime().UnixNano()), nil
	}
	if err := walk(root, "", 0); err != nil {
		return "", err
	}
	return b.String(), nil
}
