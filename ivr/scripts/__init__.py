"""Call scripts: what the agent's page shows for each call.

model.py     the frozen dataclasses of a loaded script
template.py  the {variable} syntax
loader.py    one YAML file -> checked Script (or every problem, with file:line)
library.py   a folder of scripts, hot reload, last good version kept
matching.py  which script a call pops (precedence documented there)
customers.py the customer list (CSV) that fills names and details
fill.py      a script filled for one call and agent, as JSON
source.py    choose + fill, for the script pop (ivr/pop.py)
check.py     `ivr check` for a scripts folder
"""

from . import model
from .check import check_folder
from .customers import Customer, CustomerDirectory, CustomerFileError, check_customers
from .fill import fill, variable_values
from .library import ReloadReport, ScriptLibrary
from .loader import load_script, parse_script
from .matching import ScriptChoice, choose_script
from .model import *  # noqa: F403 (the records, as listed in model.__all__)
from .source import LibraryScriptSource

__all__ = [
    *model.__all__,
    "Customer",
    "CustomerDirectory",
    "CustomerFileError",
    "LibraryScriptSource",
    "ReloadReport",
    "ScriptChoice",
    "ScriptLibrary",
    "check_customers",
    "check_folder",
    "choose_script",
    "fill",
    "load_script",
    "parse_script",
    "variable_values",
]
