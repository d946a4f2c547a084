# waystation: make run starts the product with a simulated county,
# make test runs every check that CI runs.

GO      ?= go
BIN     ?= bin/waystation
TESTTIME ?= 9m

.PHONY: all build run test vet bench fuzz clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/waystation

## run: the embedded default with a simulated county of 129 stations
run: build
	./$(BIN) serve --demo

## test: vet and every test with the race detector
test: vet
	$(GO) test -race -count=1 -timeout $(TESTTIME) ./...

vet:
	$(GO) vet ./...

## bench: benchmarks with their figures
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./...

## fuzz: each decoder fuzz target for FUZZTIME (default 30s)
FUZZTIME ?= 30s
fuzz:
	@for t in $$($(GO) test -list '^Fuzz' ./schemas | grep '^Fuzz'); do \
		echo "== $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) ./schemas || exit 1; \
	done

clean:
	rm -rf bin
