// Package plugindocs checks that the kite.hcl examples in plugin READMEs
// are valid configuration: each ```hcl block parses and passes the
// schema checks of the plugins it configures (core/config.Parse against
// the catalog with every plugin linked).
package plugindocs
