#!/bin/sh
# Entry point for every base image. Under Lambda, or under an emulator that started us, the Runtime API
# address is set: run the runtime client. Otherwise start the emulator first, with ourselves as its child,
# as AWS documents for images built on other bases ("testing an image without adding the RIE to it":
# mount it at /usr/local/bin/aws-lambda-rie).
set -e
if [ -z "${AWS_LAMBDA_RUNTIME_API:-}" ]; then
    exec /usr/local/bin/aws-lambda-rie "$0" "$@"
fi
if [ -x /var/runtime/bootstrap ]; then
    # AWS base images: their bootstrap reads the handler from _HANDLER.
    export _HANDLER="$1"
    exec /var/runtime/bootstrap
fi
exec python3 -m awslambdaric "$@"
