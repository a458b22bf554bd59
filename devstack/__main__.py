"""``python -m devstack``: what ``make up`` runs."""

import logging
import os
import sys

from devstack.stack import main

status = main()
# This process holds a Temporal client too: leave without the teardown that
# the SDK's threads can abort (temporalio/sdk-python#300).
logging.shutdown()
sys.stdout.flush()
os._exit(status)
