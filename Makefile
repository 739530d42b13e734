# rswitch developer entry points.
#
#   make run [ARGS="--config rswitch.toml"]   build (release) and start the PBX
#   make build                                debug build of the workspace
#   make test [TEST_ARGS="--quick -- filter"] the full check that CI runs
#   make fuzz TARGET=message [SECONDS=1800]   run one fuzz target (docs/fuzzing.md)
#   make fmt | make clippy | make clean

# Debian packages needed to build and run rswitch (codec -dev packages go here).
RUN_PACKAGES := pkg-config cmake libbcg729-dev libgsm1-dev libopencore-amrnb-dev

# Debian packages the test suite talks to (SIP peers such as sip-tester go here).
TEST_PACKAGES := postgresql postgresql-common redis-server sip-tester baresip-core espeak-ng sox libsox-fmt-all ffmpeg

# The cargo binary to use.
CARGO ?= cargo

# Extra arguments for `rswitch serve` in `make run`.
ARGS ?=

# Extra arguments for scripts/test in `make test`, e.g. --quick or `-- filter`.
TEST_ARGS ?=

# The fuzz target and how long `make fuzz` runs it.
TARGET ?=
SECONDS ?= 1800

# scripts/test reads the package lists and cargo from the environment.
export RUN_PACKAGES TEST_PACKAGES CARGO

.PHONY: all run build test fuzz fmt clippy clean packages test-packages print-%

all: build

# Install the packages needed to build and run.
packages:
	scripts/ensure-packages $(RUN_PACKAGES)

# Install everything the test suite needs as well.
test-packages:
	scripts/ensure-packages $(RUN_PACKAGES) $(TEST_PACKAGES)

run:
	scripts/ensure-packages $(RUN_PACKAGES)
	$(CARGO) build --release --bin rswitch
	exec ./target/release/rswitch serve $(ARGS)

build: packages
	$(CARGO) build --workspace

test:
	scripts/test $(TEST_ARGS)

fuzz:
	@test -n "$(TARGET)" || { echo "usage: make fuzz TARGET=name [SECONDS=n]; targets:"; fuzz/run list; exit 2; }
	fuzz/run $(TARGET) $(SECONDS)

fmt:
	$(CARGO) fmt --all

clippy: packages
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean

# `make print-VAR` prints the value of a variable (used by scripts/test).
print-%:
	@echo '$($*)'
