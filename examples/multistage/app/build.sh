#!/bin/sh
# "Compiles" the demo application: writes a tiny shell program.
printf '#!/bin/sh\necho "$GREETING (built at stage build)"\n'
