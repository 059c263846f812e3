package main

import (
	"context"
	"errors"
	"flag"
)

func idleCmd(args []string) error {
	fs := flag.NewFlagSet("idle", flag.ExitOnError)
	_ = fs.Parse(args)
	_ = context.Background()
	return errors.New("todo")
}
