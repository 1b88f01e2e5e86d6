// Package integrations holds the tests that prove piccolo works with the
// tools around it: scany, goose, otelpgx, Prometheus's pgxpool collector
// and the OpenTelemetry SDK. It is a module of its own so that the
// library's go.mod gains none of them.
package integrations
