# waystation: make run starts the product with a simulated county,
# make test runs every check that CI runs.

GO      ?= go
BIN     ?= bin/waystation
TESTTIME ?= 9m

.PHONY: all build run test vet bench fuzz soak clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/waystation

## run: the embedded default with a simulated county of 129 stations;
## RUNFLAGS adds serve flags (other addresses, say)
RUNFLAGS ?=
run: build
	./$(BIN) serve --demo --demo-scenario hot-july-day --start "2025-07-22 10:30" --speed 10 $(RUNFLAGS)

## test: vet and every test with the race detector, then the tests that
## cannot run under it (the reconnect storm: too many goroutines; the
## stack check: its frames differ) and, for 30,000 inputs each, the fuzz
## targets of what devices send (a count, not a duration: a loaded
## machine then fuzzes slower instead of racing the fuzzer's deadline)
test: vet
	$(GO) test -race -count=1 -timeout $(TESTTIME) ./...
	$(GO) test -count=1 -run '^(TestReconnectStorm|TestPublishStacksSettle)$$' -timeout 5m ./broker
	@$(MAKE) --no-print-directory fuzz FUZZTIME=30000x FUZZMATCH='$(DEVICEFUZZ)'

vet:
	$(GO) vet ./...

## bench: benchmarks with their figures, then the load generator against
## Mosquitto (ingest, latency, fleet; a few minutes; needs mosquitto)
bench: build
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./...
	./$(BIN) loadgen

## fuzz: each decoder fuzz target (whose name FUZZMATCH matches) for
## FUZZTIME (default 30s, or a count such as 30000x). Go 1.26's fuzzer
## can end a timed run with a bare "context deadline exceeded" although
## it found nothing (go.dev/issue/75804): such a run is reported and
## passes; any run that was minimizing, or wrote a failing input to the
## package's testdata/fuzz, fails.
FUZZTIME  ?= 30s
FUZZPKGS  ?= ./schemas ./devices
FUZZMATCH ?= .
DEVICEFUZZ = ^Fuzz(DecodeStatus|DecodeTelemetry|DecodeEvent|DecodeCommandResult|DecodeAccessRequest|ParseTopic|ValidJSON)$$
fuzz:
	@log=$$(mktemp); stamp=$$(mktemp); ran=0; for p in $(FUZZPKGS); do \
	if ! list=$$($(GO) test -list '^Fuzz' $$p 2>&1); then \
		echo "$$list"; echo "fuzz: cannot list the fuzz targets of $$p"; rm -f $$log $$stamp; exit 1; fi; \
	for t in $$(echo "$$list" | grep '^Fuzz' | grep -E '$(FUZZMATCH)'); do \
		ran=$$((ran+1)); echo "== $$p $$t ($(FUZZTIME))"; \
		touch $$stamp; \
		if ! $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$p > $$log 2>&1; then \
			if grep -q '^    context deadline exceeded$$' $$log && \
				! grep -qE 'Failing input written|minimizing .*failing input|panic:|fatal error:|--- FAIL: Fuzz[^ ]*/' $$log && \
				[ -z "$$(find $$p/testdata/fuzz/$$t -type f -newer $$stamp 2>/dev/null)" ]; then \
				echo "   $$t: the fuzzer's own end-of-time race (go.dev/issue/75804), no failing input"; \
			else cat $$log; rm -f $$log $$stamp; exit 1; fi; \
		fi; \
	done; done; rm -f $$log $$stamp; \
	if [ $$ran -eq 0 ]; then echo "fuzz: no fuzz target matches FUZZMATCH=$(FUZZMATCH)"; exit 1; fi

## soak: the long checks: each fuzz target for SOAKFUZZTIME (default 1m),
## a reconnect storm of SOAKDEVICES (default 5000) devices, four kill -9s
## under load of 100 devices, and a whole simulated day of history retention
SOAKFUZZTIME ?= 1m
SOAKDEVICES  ?= 5000
soak:
	WAYSTATION_STORM_DEVICES=$(SOAKDEVICES) $(GO) test -count=1 -v -run '^TestReconnectStorm$$' \
		-timeout 20m ./broker
	WAYSTATION_SOAK=1 $(GO) test -race -count=1 -v -run '^(TestKill9UnderLoad|TestHistoryRetentionFileStopsGrowing)$$' \
		-timeout 20m ./cmd/waystation ./devices
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(SOAKFUZZTIME)

clean:
	rm -rf bin
