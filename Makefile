# Everything a developer or CI runs. Tools are pinned and installed into ./bin.
SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin

BUF_VERSION                := v1.75.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GRPCURL_VERSION            := v1.9.4
STATICCHECK_VERSION        := v0.8.2

export PATH := $(BIN):$(PATH)

.PHONY: bench help demo test test-short test-kafka kafka-up kafka-down build tools generate checkgenerate lint fmt clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-15s %s\n", $$1, $$2}'

demo: ## run alice and bob through both services on an embedded Kafka (or KAFKA_BROKERS)
	$(GO) run ./services/demo

test: ## the whole suite with the race detector, on the embedded broker
	$(GO) test -race -count=1 -timeout 20m ./...

test-short: ## unit tests only
	$(GO) test -short -count=1 ./...

test-kafka: ## the integration suite against a real Kafka (make kafka-up first, or set KAFKA_BROKERS)
	KAFKA_BROKERS=$${KAFKA_BROKERS:-127.0.0.1:$${KAFKA_PORT:-19092}} $(GO) test -race -count=1 -timeout 30m ./pkg/e2e/... ./pkg/demo/...

build: ## build every binary into ./bin
	$(GO) build -o $(BIN)/ ./services/...

$(BIN)/buf:
	GOBIN=$(BIN) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(BIN)/protoc-gen-go:
	GOBIN=$(BIN) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(BIN)/protoc-gen-go-grpc:
	GOBIN=$(BIN) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(BIN)/grpcurl:
	GOBIN=$(BIN) $(GO) install github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)
$(BIN)/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

tools: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(BIN)/grpcurl ## install the pinned tools into ./bin

generate: $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc ## regenerate pkg/gen from proto/
	buf generate

checkgenerate: generate ## fail if the committed generated code differs from the proto
	@git diff --exit-code -- pkg/gen || { echo "pkg/gen is out of date: run make generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- pkg/gen)" || { echo "untracked files in pkg/gen: run make generate and commit"; exit 1; }

lint: $(BIN)/buf $(BIN)/staticcheck ## go vet, staticcheck, gofmt, buf lint and buf format
	$(GO) vet ./...
	staticcheck ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	buf lint
	buf format -d --exit-code

fmt: $(BIN)/buf ## format Go and proto sources
	gofmt -w $$(git ls-files '*.go')
	buf format -w

kafka-up: ## start a real Apache Kafka 4.1 on 127.0.0.1:19092 (jars from Maven Central, cached in .cache/)
	bash scripts/kafka/kafka.sh up

kafka-down: ## stop it
	bash scripts/kafka/kafka.sh down

clean: ## remove built binaries and caches of this repo
	rm -rf $(BIN) .cache

bench: ## benchmarks next to same-run baselines; writes BENCHMARKS.md and BENCHMARKS.json (also on KAFKA_BROKERS if set)
	$(GO) run ./services/bench
