package etcd

import (
	"github.com/hashicorp/go-hclog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newZapLogger returns the zap logger the etcd client is given: its
// entries go to log (hclog), so they land where the rest of the process
// logs, in its format and at its level, instead of as JSON on stderr.
//
// Levels are lowered by one step: the client logs every retry at warn
// while etcd is unreachable, which would flood a service's log at the
// default info level; the registry reports failures through its return
// values. So zap debug and info become hclog trace and debug, warn
// becomes debug, and error (and worse) stays error.
func newZapLogger(log hclog.Logger) *zap.Logger {
	return zap.New(&hclogCore{log: log})
}

// hclogCore is a zapcore.Core writing to an hclog.Logger.
type hclogCore struct {
	log  hclog.Logger
	args []any // fields added With, as hclog key/value pairs
}

func hclogLevel(l zapcore.Level) hclog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return hclog.Trace
	case l <= zapcore.WarnLevel:
		return hclog.Debug
	}
	return hclog.Error
}

func (c *hclogCore) Enabled(l zapcore.Level) bool {
	switch hclogLevel(l) {
	case hclog.Trace:
		return c.log.IsTrace()
	case hclog.Debug:
		return c.log.IsDebug()
	}
	return c.log.IsError()
}

func (c *hclogCore) With(fields []zapcore.Field) zapcore.Core {
	return &hclogCore{log: c.log, args: append(append([]any(nil), c.args...), fieldArgs(fields)...)}
}

func (c *hclogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *hclogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	args := append(append([]any(nil), c.args...), fieldArgs(fields)...)
	if e.LoggerName != "" {
		args = append(args, "logger", e.LoggerName)
	}
	c.log.Log(hclogLevel(e.Level), e.Message, args...)
	return nil
}

func (c *hclogCore) Sync() error { return nil }

// fieldArgs turns zap fields into hclog key/value pairs.
func fieldArgs(fields []zapcore.Field) []any {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	args := make([]any, 0, 2*len(fields))
	for _, f := range fields { // in the order given, not the map's
		if v, ok := enc.Fields[f.Key]; ok {
			args = append(args, f.Key, v)
			delete(enc.Fields, f.Key)
		}
	}
	return args
}
