"""``python -m lianjie`` is the same as the ``lianjie`` command."""

from lianjie.cli import main

main()
