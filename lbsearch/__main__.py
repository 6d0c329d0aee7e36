"""`python -m lbsearch` runs the command-line interface."""

from lbsearch.cli.main import run

if __name__ == "__main__":
    run()
