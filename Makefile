# Every target creates .venv if missing and installs the project into it.
PY := .venv/bin/python
STAMP := .venv/.installed

.PHONY: install test test-slow lint demo clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	.venv/bin/ruff check .

test: $(STAMP) lint
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

test-slow: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m slow

# The demo study (held-out real + sampled brains from the bundled model) in the reader app; headless
# machines get build/demo/screenshot.png instead. Reruns reuse what was made.
demo: $(STAMP)
	.venv/bin/mdiff-demo --out build/demo

clean:
	rm -rf .venv build *.egg-info
