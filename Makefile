# vSnoop: the two set-up commands of the README.
#   make demo   installs what is missing, builds, runs the consolidation lab's quick run
#   make test   installs what is missing, builds, runs every test (unit, golden, property,
#               replay, fuzz smoke, sanitizers, network namespaces, qemu)
# Other targets are steps of those two, and documented commands for longer runs.

JOBS ?= $(shell nproc)
CTEST_FLAGS ?= --output-on-failure --timeout 900

.PHONY: all deps build build-asan build-fuzz demo test test-release test-asan test-fuzz \
        format tidy clean

all: build

deps:
	@bash scripts/install-deps.sh

build: deps
	@cmake --preset release >/dev/null
	@cmake --build --preset release -j $(JOBS)

build-asan: deps
	@cmake --preset asan >/dev/null
	@cmake --build --preset asan -j $(JOBS)

build-fuzz: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build --preset fuzz -j $(JOBS) --target fuzz_parse fuzz_engine

test-release: build
	@cd build/release && ctest $(CTEST_FLAGS) -j $(JOBS)

test-asan: build-asan
	@cd build/asan && ctest $(CTEST_FLAGS) -j $(JOBS) -LE slow

test-fuzz: build-fuzz
	@cd build/fuzz && ctest $(CTEST_FLAGS) -L fuzz

test: test-release test-asan test-fuzz
	@echo "make test: all tests passed"

demo: build
	@bash scripts/demo.sh

format:
	@git ls-files '*.cc' '*.h' | xargs clang-format -i

tidy: build
	@git ls-files 'core/*.cc' 'sim/*.cc' | xargs clang-tidy -p build/release --quiet

clean:
	@rm -rf build
