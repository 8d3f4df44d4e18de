# The two commands a newcomer needs:
#   make demo   set up a virtual environment and run the whole flow on simulated hardware
#   make test   install everything the tests need and run the whole suite
#
# On a Raspberry Pi: make VENV_FLAGS=--system-site-packages demo  (picamera2 from apt)

PYTHON      ?= python3
VENV        ?= .venv
VENV_FLAGS  ?=
BIN         := $(VENV)/bin
DEMO_DIR    ?= demo/$(shell date +%Y%m%d-%H%M%S)
# Debian packages the tests use; installed only when running as root.
APT_PACKAGES := openssl ffmpeg libportaudio2 jackd2 systemd udev iproute2 qemu-user-static debootstrap rsync postgresql openssh-server
# The archive's evidence packages: PDF text/pages checks, CJK fonts for the report, ISO images.
APT_PACKAGES += poppler-utils fonts-noto-cjk xorriso
# WeasyPrint draws the report PDF through Pango (also pulled in by chromium; named for a station without it).
APT_PACKAGES += libpango-1.0-0 libpangoft2-1.0-0
# The station console's browser tests: Debian's chromium driven by Playwright.
APT_PACKAGES += chromium
# Debian packages: debhelper builds them with a bundled venv; python3-systemd for journald.
APT_PACKAGES += debhelper dpkg-dev python3.11 python3.11-venv python3-systemd

.PHONY: demo test bench soak system-deps venv clean packages

venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	# picamera2's outputs, for the tests that run them off the Pi (no libcamera here;
	# on a Pi it comes from apt with everything it needs).
	$(BIN)/pip install --quiet --no-deps 'picamera2>=0.3.26,<0.4'
	touch $@

demo: venv
	$(BIN)/bodycam demo --workdir $(DEMO_DIR) $(if $(SERVE),--serve)

system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    missing=""; for p in $(APT_PACKAGES); do \
	        dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	    if [ -n "$$missing" ]; then \
	        echo "installing Debian packages:$$missing"; \
	        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	    fi; \
	else echo "not root: make sure these Debian packages are installed: $(APT_PACKAGES)"; fi

test: system-deps venv
	$(BIN)/python -m pytest -q

bench: system-deps venv
	$(BIN)/python -m bench

# The dock's link-cut test with 200 cuts instead of the suite's 50.
soak: system-deps venv
	BODYCAM_CUTS=200 $(BIN)/python -m pytest -q tests/test_dock_faults.py -k link_cut

# Debian packages (debhelper, packaging/debian): bodycam-station for amd64 and
# arm64, bodycam-recorder for arm64, into build/packages/.
PACKAGE_ARCHES ?= amd64 arm64
packages: system-deps venv
	BODYCAM_PYTHON=$(abspath $(BIN)/python) packaging/build-packages build/packages $(PACKAGE_ARCHES)

clean:
	rm -rf $(VENV) demo bench-out .pytest_cache .hypothesis
