# duban's image: the `duban` command and everything it imports, run as an unprivileged user.
# Which service a container is comes from its command: `worker`, `project`, or any CLI subcommand
# (see docker-compose.yml). Configuration is by DUBAN_* environment variables only.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The documents need Pango (WeasyPrint lays out the PDFs) and CJK fonts (Chinese in PDFs and charts).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-noto-cjk fontconfig \
    && rm -rf /var/lib/apt/lists/*

# Install the project (not editable) from a copy of the build context (.dockerignore trims it),
# then drop the copy: the installed package is all that runs.
WORKDIR /src
COPY . .
RUN pip install --no-cache-dir . \
    && rm -rf /src

# An unprivileged user owning the data directory (a volume in docker-compose.yml).
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/duban duban \
    && mkdir -p /var/lib/duban \
    && chown duban:duban /var/lib/duban
ENV DUBAN_DATA_DIR=/var/lib/duban
WORKDIR /var/lib/duban
USER duban

ENTRYPOINT ["duban"]
CMD ["--help"]
