# The front door: make run, make test, make build, make fuzz (make fuzz-long for a campaign).
FUZZ_SECONDS ?= 20
PORT ?= 8080

.PHONY: all deps test-deps bench-deps build release release-check tsan test run fuzz fuzz-long bench \
	soak format clean install

all: build

# What building and running need; test-deps adds the tools the tests drive (scripts/install-deps).
deps:
	@scripts/install-deps

test-deps:
	@scripts/install-deps --test

bench-deps:
	@scripts/install-deps --bench

# The dev build holds the tests, so it needs the test libraries too.
build: test-deps
	cmake --preset dev >/dev/null
	cmake --build --preset dev

release: deps
	cmake --preset release >/dev/null
	cmake --build --preset release

# The release configuration users install, built with -Werror and its unit tests enabled.
release-check: test-deps
	cmake --preset release-check >/dev/null
	cmake --build --preset release-check

# The server's integration suites (conditional, lifecycle, variants, fly, etags) under ThreadSanitizer:
# workers, the hashing pool, the memo, the access log and the variants cache are shared by threads.
tsan: test-deps
	cmake --preset tsan >/dev/null
	cmake --build --preset tsan
	ctest --preset tsan

test: build release-check tests/browser/node_modules
	ctest --preset dev
	ctest --preset release-check
	@$(MAKE) --no-print-directory tsan
	@$(MAKE) --no-print-directory fuzz

# playwright-core for the Chromium tests, at the version package-lock.json pins.
tests/browser/node_modules: tests/browser/package.json tests/browser/package-lock.json | test-deps
	cd tests/browser && npm ci --no-audit --no-fund
	@touch $@

# The release build into $(DESTDIR)$(PREFIX): bin/notmod, lib/libnotmod.{a,so}, include/notmod/,
# lib/pkgconfig/notmod.pc, share/man/man1/, share/bash-completion/, lib/systemd/system/.
PREFIX ?= /usr/local
install: release
	DESTDIR="$(DESTDIR)" cmake --install build/release --prefix "$(PREFIX)"

run: release
	./build/release/notmod serve --listen 127.0.0.1:$(PORT) examples/site

# Short libFuzzer runs of every target on top of the checked-in corpora (clang's libFuzzer).
fuzz: test-deps
	@if ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1; then \
		cmake --preset fuzz >/dev/null && cmake --build --preset fuzz && \
		scripts/fuzz-run build/fuzz $(FUZZ_SECONDS); \
	else echo "fuzz: clang's libFuzzer is not installed; corpora were replayed by ctest"; fi

# Ten minutes per target (docs/testing.md): FUZZ_SECONDS=N make fuzz for another length.
fuzz-long:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=600

# notmod, nginx, H2O and lighttpd side by side (docs/benchmarks.md); BENCH_ARGS adds options,
# e.g. BENCH_ARGS="--runs 5 --scenarios inm,get1k --markdown build/bench.md".
bench: release bench-deps
	python3 bench/compare.py $(BENCH_ARGS)

# Ten minutes of mixed load against the release build while a writer changes the files
# (tests/soak/soak.py; a one-minute version runs in make test). SOAK_SECONDS changes the length.
SOAK_SECONDS ?= 600
soak: release
	nice -n 10 python3 tests/soak/soak.py --binary build/release/notmod --seconds $(SOAK_SECONDS) \
		--json build/soak.json

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build
