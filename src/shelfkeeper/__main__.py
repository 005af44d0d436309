"""`python -m shelfkeeper`: the command line."""

from shelfkeeper.cli import main

if __name__ == "__main__":
    main()
