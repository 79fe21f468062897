"""Pure logic of the stages: no I/O, no clock; thin adapters around it live one level up.

The journey modules may run compiled by mypyc (`stream_processors.compiled`): this package
then finds them in the current build first, every other module in its sources.
"""

from stream_processors.compiled import package_path

__path__ = package_path(__path__[0])
