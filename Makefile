# Every target creates .venv if missing and installs the project into it. The first install
# downloads torch and PySide6 (a few minutes); each step says what it is doing.
PY := .venv/bin/python
STAMP := .venv/.installed
TORCH := 2.13.0
SAY := @echo "make:"

.PHONY: install test test-slow lint demo clean

$(STAMP): pyproject.toml
	@test -x $(PY) || { echo "make: creating the virtual environment .venv"; python3 -m venv .venv; }
	$(SAY) "upgrading pip in .venv"
	@$(PY) -m pip install --quiet --upgrade pip
	$(SAY) "installing torch $(TORCH), the largest download (a few minutes the first time) ..."
	@$(PY) -m pip install --quiet "torch==$(TORCH)"
	$(SAY) "installing mdiff[dev] in editable mode (PySide6, MONAI, pytest, ruff, ...) ..."
	@$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)
	$(SAY) "installed; the commands are in .venv/bin (mdiff-demo, mdiff-reader, mdiff-study, ...)"

install: $(STAMP)

lint: $(STAMP)
	.venv/bin/ruff check .

test: $(STAMP) lint
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q

test-slow: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest -q -m slow

# The demo study (held-out real + sampled brains from the bundled model) in the reader app; headless
# machines get build/demo/screenshot.png of a synthetic case instead. Reruns reuse what was made.
demo: $(STAMP)
	$(SAY) "sampling brains from the bundled model and building the demo study in build/demo ..."
	.venv/bin/mdiff-demo --out build/demo

clean:
	rm -rf .venv build *.egg-info
