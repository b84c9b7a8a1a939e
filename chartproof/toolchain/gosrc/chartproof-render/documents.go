package main

// A rendered file's documents and their heads, as releaseutil.SortManifests finds them, without its regular
// expression. Helm splits a file with (?:^|\s*\n)---\s* (Go's \s: tab, newline, form feed, carriage return,
// space), and that expression scans at about 20 MB/s: on a chart whose templates emit a 600 kB CRD that carries
// the release name, the scan was a third of a render under a new release name. splitDocuments finds the same
// matches with string search; documents_test.go holds it to helm's split on generated and hand-made files.

import (
	"strconv"
	"strings"

	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"sigs.k8s.io/yaml"
)

// isSpace is the \s of Go's regular expressions (not unicode.IsSpace, which also takes \v and others).
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'
}

// separators returns the [start, end) of each match of helm's separator in text, left to right, as the
// expression's FindAllStringIndex would. A match is either "---" at the very start of the text, or a run of
// whitespace that ends in a newline directly followed by "---" (the run may be empty: just the newline); both
// then take all the whitespace after the dashes. The next match is looked for from the end of the last one.
func separators(text string) [][2]int {
	var found [][2]int
	from := 0
	if strings.HasPrefix(text, "---") {
		end := 3
		for end < len(text) && isSpace(text[end]) {
			end++
		}
		found = append(found, [2]int{0, end})
		from = end
	}
	for from < len(text) {
		offset := strings.Index(text[from:], "\n---")
		if offset < 0 {
			break
		}
		newline := from + offset
		start := newline
		for start > from && isSpace(text[start-1]) {
			start-- // the whitespace before the newline is part of the match, back to where the search began
		}
		end := newline + 4
		for end < len(text) && isSpace(text[end]) {
			end++
		}
		found = append(found, [2]int{start, end})
		from = end
	}
	return found
}

// splitDocuments is the documents of releaseutil.SplitManifests(file), in file order: the trimmed file cut at
// each separator, empty pieces dropped, each piece trimmed (a piece of only Unicode spaces, such as "\v",
// is kept and trimmed to "", as helm keeps it).
func splitDocuments(file string) []string {
	text := strings.TrimSpace(file)
	var docs []string
	keep := func(piece string) {
		if piece != "" {
			docs = append(docs, strings.TrimSpace(piece))
		}
	}
	begin := 0
	for _, match := range separators(text) {
		keep(text[begin:match[0]])
		begin = match[1]
	}
	keep(text[begin:])
	return docs
}

// hookEvents are the values of helm.sh/hook that SortManifests knows (test-success: helm 2's name for test).
var hookEvents = map[string]release.HookEvent{
	"pre-install": release.HookPreInstall, "post-install": release.HookPostInstall,
	"pre-delete": release.HookPreDelete, "post-delete": release.HookPostDelete,
	"pre-upgrade": release.HookPreUpgrade, "post-upgrade": release.HookPostUpgrade,
	"pre-rollback": release.HookPreRollback, "post-rollback": release.HookPostRollback,
	"test": release.HookTest, "test-success": release.HookTest,
}

// listedValues is an annotation's comma-separated values, each trimmed and lower-cased.
func listedValues(annotation string) []string {
	var out []string
	for _, value := range strings.Split(annotation, ",") {
		out = append(out, strings.ToLower(strings.TrimSpace(value)))
	}
	return out
}

// classifyFile is SortManifests' share of one file, in file order (not yet sorted by kind). ok is false where
// this file needs helm's own code: a document that does not parse (helm's error names it) or a hook of an
// unknown event (helm logs it, with its own source line). Those files go through SortManifests itself.
func classifyFile(name, content string) (hooks []*release.Hook, generic []releaseutil.Manifest, ok bool) {
	hooks = []*release.Hook{}
	for _, doc := range splitDocuments(content) {
		var head releaseutil.SimpleHead
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			return nil, nil, false
		}
		var annotations map[string]string
		if head.Metadata != nil {
			annotations = head.Metadata.Annotations
		}
		events, isHook := annotations[release.HookAnnotation]
		if !isHook {
			generic = append(generic, releaseutil.Manifest{Name: name, Content: doc, Head: &head})
			continue
		}
		hook := &release.Hook{
			Name: head.Metadata.Name, Kind: head.Kind, Path: name, Manifest: doc,
			Events: []release.HookEvent{}, DeletePolicies: []release.HookDeletePolicy{},
			OutputLogPolicies: []release.HookOutputLogPolicy{},
		}
		if weight, err := strconv.Atoi(annotations[release.HookWeightAnnotation]); err == nil {
			hook.Weight = weight // helm's weight: the annotation's integer, or 0
		}
		for _, event := range listedValues(events) {
			known, found := hookEvents[event]
			if !found {
				return nil, nil, false
			}
			hook.Events = append(hook.Events, known)
		}
		if policies, set := annotations[release.HookDeleteAnnotation]; set {
			for _, policy := range listedValues(policies) {
				hook.DeletePolicies = append(hook.DeletePolicies, release.HookDeletePolicy(policy))
			}
		}
		if policies, set := annotations[release.HookOutputLogAnnotation]; set {
			for _, policy := range listedValues(policies) {
				hook.OutputLogPolicies = append(hook.OutputLogPolicies, release.HookOutputLogPolicy(policy))
			}
		}
		hooks = append(hooks, hook)
	}
	return hooks, generic, true
}
