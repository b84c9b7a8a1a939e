// Command helm-unittest runs helm-unittest's test runner (github.com/helm-unittest/helm-unittest, the helm plugin
// `helm unittest`) as a standalone program: the same runner and options as the plugin's own binary, plus
// --version, which the plugin's binary lacks and the toolchain needs to check a build.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/helm-unittest/helm-unittest/pkg/unittest"
	"github.com/helm-unittest/helm-unittest/pkg/unittest/formatter"
	"github.com/helm-unittest/helm-unittest/pkg/unittest/printer"
)

// version is stamped at build time (-X main.version=...).
var version = "dev"

func main() {
	flags := pflag.NewFlagSet("helm-unittest", pflag.ContinueOnError)
	showVersion := flags.Bool("version", false, "print the version and exit")
	files := flags.StringArrayP("file", "f", nil, "glob paths of test suite files, relative to the chart (default tests/*_test.yaml)")
	values := flags.StringArrayP("values", "v", nil, "values files that override the chart's values")
	strict := flags.Bool("strict", false, "parse the test suites strictly")
	failfast := flags.BoolP("failfast", "q", false, "stop at the first failed test")
	withSubcharts := flags.BoolP("with-subchart", "s", true, "include the tests of subcharts under charts/")
	skipSchema := flags.Bool("skip-schema-validation", false, "skip values schema validation when rendering")
	outputFile := flags.StringP("output-file", "o", "", "write the results to this file")
	outputType := flags.StringP("output-type", "t", "XUnit", "format of --output-file: JUnit, NUnit, XUnit or Sonar")
	chartTests := flags.String("chart-tests-path", "", "a chart, relative to the chart under test, that renders test suites")
	color := flags.Bool("color", false, "colour the output even when stdout is not a terminal")
	if err := flags.Parse(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if *showVersion {
		fmt.Printf("helm-unittest %s\n", version)
		return
	}
	charts := flags.Args()
	if len(charts) == 0 {
		fmt.Fprintln(os.Stderr, "usage: helm-unittest [flags] CHART [CHART...]")
		os.Exit(2)
	}
	if len(*files) == 0 {
		*files = []string{"tests/*_test.yaml"}
	}
	var colored *bool
	if flags.Changed("color") {
		colored = color
	}
	runner := unittest.TestRunner{
		Printer:              printer.NewPrinter(os.Stdout, colored),
		Formatter:            formatter.NewFormatter(*outputFile, *outputType),
		WithSubChart:         *withSubcharts,
		Strict:               *strict,
		Failfast:             *failfast,
		SkipSchemaValidation: *skipSchema,
		TestFiles:            *files,
		ValuesFiles:          *values,
		OutputFile:           *outputFile,
		ChartTestsPath:       *chartTests,
	}
	if !runner.RunV3(charts) {
		os.Exit(1)
	}
}
