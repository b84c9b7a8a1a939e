package main

// The client-only install that `helm template` runs (action.Install with ClientOnly and DryRun), step for step,
// with one difference: the split of each rendered file into documents and the parse of each document's head
// (releaseutil.SortManifests) is remembered per file content, and done without helm's regular expression
// (documents.go). Helm's head parse is a full YAML-to-JSON conversion; on a chart whose templates emit large
// CRDs the two are most of a render, and those files mostly render the same every time. The result is the
// same: SortManifests handles the files one after another in path order, appending each file's documents, and
// then stable-sorts everything by kind. Taking each file's share in file order and then stable-sorting the
// concatenation by kind gives that same order.

import (
	"bytes"
	"fmt"
	"path"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
)

// sortedFile is one rendered file's share of SortManifests: its hooks and other documents in kind order,
// what sorting it logged, and its error.
type sortedFile struct {
	hooks   []*release.Hook
	generic []releaseutil.Manifest
	log     string
	err     error
}

// sortMemoLimit bounds the file text whose sortedFile is kept (renderer.sorted, by path and content).
const sortMemoLimit = 256 << 20

func (r *renderer) sortFile(name, content string) *sortedFile {
	key := name + "\x00" + content
	if found, ok := r.sorted.Get(key); ok {
		r.logs.WriteString(found.log)
		return found
	}
	before := r.logs.Len()
	hooks, generic, ok := r.heads.classifyFile(name, content)
	var err error
	if !ok { // a document that does not parse, or an unknown hook: helm's own error and log line
		hooks, generic, err = releaseutil.SortManifests(map[string]string{name: content}, nil, releaseutil.InstallOrder)
	}
	entry := &sortedFile{hooks: hooks, generic: generic, log: r.logs.String()[before:], err: err}
	r.sorted.Put(key, entry, len(key))
	return entry
}

// sortManifests is releaseutil.SortManifests(files, nil, releaseutil.InstallOrder) through the memo.
func (r *renderer) sortManifests(files map[string]string) ([]*release.Hook, []releaseutil.Manifest, error) {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	hooks := []*release.Hook{}
	var generic []releaseutil.Manifest
	for _, name := range names {
		content := files[name]
		if strings.HasPrefix(path.Base(name), "_") || strings.TrimSpace(content) == "" {
			continue // partials and empty files, as SortManifests skips them
		}
		share := r.sortFile(name, content)
		hooks = append(hooks, share.hooks...)
		generic = append(generic, share.generic...)
		if share.err != nil {
			return hooks, generic, share.err
		}
	}
	rank := make(map[string]int, len(releaseutil.InstallOrder))
	for index, kind := range releaseutil.InstallOrder {
		rank[kind] = index
	}
	sort.SliceStable(hooks, func(i, j int) bool { return kindBefore(rank, hooks[i].Kind, hooks[j].Kind) })
	sort.SliceStable(generic, func(i, j int) bool { return kindBefore(rank, generic[i].Head.Kind, generic[j].Head.Kind) })
	return hooks, generic, nil
}

// kindBefore is helm's install order: known kinds by their rank, unknown kinds after them by name.
func kindBefore(rank map[string]int, a, b string) bool {
	first, aKnown := rank[a]
	second, bKnown := rank[b]
	switch {
	case !aKnown && !bKnown:
		return a < b
	case !aKnown:
		return false
	case !bKnown:
		return true
	}
	return first < second
}

// run is client.Run(chrt, vals) for the client-only dry run `helm template` configures.
func (r *renderer) run(client *action.Install, chrt *chart.Chart, vals map[string]interface{}) (*release.Release, error) {
	if err := chartutil.ValidateReleaseName(client.ReleaseName); err != nil {
		return nil, fmt.Errorf("release name %q: %w", client.ReleaseName, err)
	}
	if err := chartutil.ProcessDependenciesWithMerge(chrt, vals); err != nil {
		return nil, err
	}
	caps := chartutil.DefaultCapabilities.Copy()
	if client.KubeVersion != nil {
		caps.KubeVersion = *client.KubeVersion
	}
	caps.APIVersions = append(caps.APIVersions, client.APIVersions...)
	isUpgrade := client.IsUpgrade
	options := chartutil.ReleaseOptions{
		Name: client.ReleaseName, Namespace: client.Namespace, Revision: 1, IsInstall: !isUpgrade, IsUpgrade: isUpgrade,
	}
	// ToRenderValuesWithSchemaValidation, with the schema step through the renderer's memo of compiled schemas.
	values, err := chartutil.ToRenderValuesWithSchemaValidation(chrt, vals, options, caps, true)
	if err != nil {
		return nil, err
	}
	if !client.SkipSchemaValidation {
		if err := r.validateAgainstSchema(chrt, values["Values"].(chartutil.Values)); err != nil {
			return nil, fmt.Errorf("values don't meet the specifications of the schema(s) in the following chart(s):\n%s", err.Error())
		}
	}
	rel := &release.Release{Name: client.ReleaseName, Namespace: client.Namespace, Chart: chrt}
	var manifest bytes.Buffer
	rel.Hooks, err = r.renderResources(chrt, values, caps, client.IncludeCRDs, client.EnableDNS, &manifest)
	rel.Manifest = manifest.String()
	return rel, err // a render error comes with the release, as helm's does
}

// renderResources is the client-only part of helm's Configuration.renderResources: render, drop the notes,
// sort, and print the CRDs (when asked) and then the manifests.
func (r *renderer) renderResources(chrt *chart.Chart, values chartutil.Values, caps *chartutil.Capabilities,
	includeCRDs, enableDNS bool, out *bytes.Buffer) ([]*release.Hook, error) {
	if chrt.Metadata.KubeVersion != "" && !chartutil.IsCompatibleRange(chrt.Metadata.KubeVersion, caps.KubeVersion.String()) {
		return []*release.Hook{}, fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s",
			chrt.Metadata.KubeVersion, caps.KubeVersion.String())
	}
	files, err := r.engine.Render(chrt, values, enableDNS)
	if err != nil {
		return []*release.Hook{}, err
	}
	for name := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			delete(files, name) // notes are not part of the manifest
		}
	}
	hooks, manifests, err := r.sortManifests(files)
	if err != nil {
		return hooks, err // helm template prints no manifest for a parse error without --debug
	}
	if includeCRDs {
		for _, crd := range chrt.CRDObjects() {
			fmt.Fprintf(out, "---\n# Source: %s\n%s\n", crd.Filename, string(crd.File.Data[:]))
		}
	}
	for _, m := range manifests {
		fmt.Fprintf(out, "---\n# Source: %s\n%s\n", m.Name, m.Content)
	}
	return hooks, nil
}
