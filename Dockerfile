# The function image. Builds on the AWS Lambda base (default) and, unchanged, on a plain Debian/Python
# base that has neither the emulator nor AWS's bootstrap (the entry script covers the difference).
#
#   FLAVOR=slim   LiteRT runs the .tflite files (default; small, fast cold start)
#   FLAVOR=keras  TensorFlow runs the .h5 files directly
#
# Layers are ordered so that a change to the function's code reinstalls nothing.
ARG BASE_IMAGE=public.ecr.aws/lambda/python:3.12

FROM ${BASE_IMAGE} AS deps
ARG FLAVOR=slim
# Build-time only (never in the final image): an optional CA bundle for pip behind a TLS-intercepting proxy.
COPY .build/ /tmp/rcyc-build/
COPY lambda/requirements-*.txt /tmp/rcyc-build/
ENV PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN set -e; \
    if [ -s /tmp/rcyc-build/ca-bundle.crt ]; then export PIP_CERT=/tmp/rcyc-build/ca-bundle.crt; fi; \
    extra=""; \
    # Bases without AWS's bootstrap need the runtime interface client.
    if [ ! -x /var/runtime/bootstrap ]; then extra="awslambdaric==4.2.2"; fi; \
    python3 -m pip install --quiet --target /opt/rcyc-deps -r "/tmp/rcyc-build/requirements-${FLAVOR}.txt" $extra

FROM ${BASE_IMAGE}
ARG FLAVOR=slim
ENV LAMBDA_TASK_ROOT=/var/task RCYC_IMAGE_FLAVOR=${FLAVOR} PYTHONDONTWRITEBYTECODE=1
WORKDIR /var/task
COPY --from=deps /opt/rcyc-deps/ /var/task/
COPY lambda/entry.sh /usr/local/bin/rcyc-entry
COPY lambda/app.py /var/task/
COPY lambda/rcyc_core/ /var/task/rcyc_core/
# Compiled once here and kept in the image: /var/task is read-only at run time (and PYTHONDONTWRITEBYTECODE
# is set), so without this every cold start compiles the function's code again.
RUN python3 -m compileall -q /var/task/app.py /var/task/rcyc_core
ENTRYPOINT ["/usr/local/bin/rcyc-entry"]
CMD ["app.handler"]
