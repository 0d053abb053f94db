# idlemux build targets. `make` builds bin/idlemux.

GO      ?= go
BIN     := bin/idlemux
VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)

.PHONY: all build run test vet lint bench clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/idlemux

# exec so Ctrl-C and SIGTERM reach idlemux itself and it shuts down gracefully.
run: build
	exec $(BIN) demo

test:
	$(GO) test -race -count=1 -timeout 15m ./...

vet:
	$(GO) vet ./...

lint: vet
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then \
		echo "gofmt needed on:"; echo "$$unformatted"; exit 1; \
	fi

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

clean:
	rm -rf bin
