package controller

import (
	"log/slog"
	"os"
)

func init() {
	if os.Getenv("CMDDEBUG") != "" {
		debugLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
}
