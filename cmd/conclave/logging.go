package main

import (
	"io"
	"log/slog"
	"os"
	"strings"
)

// newLogger returns the process's logger, writing to stderr.
//
//   - Level: $CONCLAVE_LOG_LEVEL (debug, info, warn, error) when set and
//     not empty; else debug with -v (verbose ≥ 1); else info.
//   - Format: one JSON object per line with CONCLAVE_LOG_FORMAT=json,
//     slog's text format otherwise.
//
// An unknown level or format is reported once through the new logger and
// the default used instead. serve and every verb use the same logger.
func newLogger(verbose int, stderr io.Writer) *slog.Logger {
	return newLoggerEnv(verbose, stderr, os.Getenv)
}

func newLoggerEnv(verbose int, stderr io.Writer, getenv func(string) string) *slog.Logger {
	level := slog.LevelInfo
	if verbose > 0 {
		level = slog.LevelDebug
	}
	var problems []string
	if s := strings.TrimSpace(getenv("CONCLAVE_LOG_LEVEL")); s != "" {
		if l, ok := parseLogLevel(s); ok {
			level = l
		} else {
			problems = append(problems, "ignoring CONCLAVE_LOG_LEVEL="+s+" (want debug, info, warn or error)")
		}
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch f := strings.ToLower(strings.TrimSpace(getenv("CONCLAVE_LOG_FORMAT"))); f {
	case "json":
		h = slog.NewJSONHandler(stderr, opts)
	case "", "text":
		h = slog.NewTextHandler(stderr, opts)
	default:
		h = slog.NewTextHandler(stderr, opts)
		problems = append(problems, "ignoring CONCLAVE_LOG_FORMAT="+f+" (want json or text)")
	}
	log := slog.New(h)
	for _, p := range problems {
		log.Warn(p)
	}
	return log
}

func parseLogLevel(s string) (slog.Level, bool) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, true
	case "info":
		return slog.LevelInfo, true
	case "warn", "warning":
		return slog.LevelWarn, true
	case "error":
		return slog.LevelError, true
	}
	return 0, false
}
