package core

import (
	"fmt"
	"os"
)

// childRoleEnv makes the core test binary run a helper role instead of
// the tests (see testkit.StartSelf): TestMain looks the role up in
// childRoles. Tests that must measure a server from outside (RSS, a
// lowered RLIMIT_NOFILE) register a role from an init function in their
// own file.
const childRoleEnv = "KITE_CORE_CHILD"

// childRoles maps a role name to the function that runs it; its result is
// the process's exit status.
var childRoles = map[string]func() int{}

func runChildRole(name string) int {
	f := childRoles[name]
	if f == nil {
		fmt.Fprintf(os.Stderr, "core tests: unknown child role %q\n", name)
		return 2
	}
	return f()
}
