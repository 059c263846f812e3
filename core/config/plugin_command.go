package config

import "strings"

// Command returns what the plugin runs, for messages: the executable,
// followed by its arguments when it is an interpreter running declared
// files (a Python script), since the executable alone would not say
// which plugin it is.
func (d *PluginDecl) Command() string {
	if len(d.Files) == 0 || len(d.Args) == 0 {
		return d.Path
	}
	return d.Path + " " + strings.Join(d.Args, " ")
}
