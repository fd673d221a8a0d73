#!/usr/bin/env bash
# push.sh: push one HR export to a Muster gateway, a scheduled worker's example.
#
# Needs: bash 4 or later (tested with 5.2), curl 7.55 or later, and grep with -o and -E
# (GNU, BSD and busybox grep have both), mktemp, sleep. Not jq: the
# gateway's JSON is read by a small tokenizer below (grep -o) and a parser in
# bash. Not python.
#
# One run pushes one file and exits with a code a scheduler can act on:
#
#   0  the import succeeded
#   3  it succeeded, but some rows had errors (the first 20 are printed)
#   1  it was rejected or failed, was not final within --wait, or the
#      credentials, the network, the gateway or reading the file failed
#   2  usage error (bad arguments, a format that cannot be told)
#
# Configuration, from the environment (never from the command line, where
# `ps` and shell history would show it):
#
#   MUSTER_URL                  the gateway's base URL, e.g. https://muster.example.com
#   MUSTER_CLIENT_ID            the client id
#   MUSTER_CLIENT_SECRET        the client secret, or
#   MUSTER_CLIENT_SECRET_FILE   a file holding it (set one of the two, not both)
#
# Usage:
#
#   push.sh FILE [--mapping NAME] [--mode upsert|snapshot] [--dry-run]
#                [--format csv|jsonl|scim] [--wait SECONDS]
#                [--idempotency-key K] [--retries N]
#                [--delimiter C] [--on-behalf-of WHO]
#
# The flow (docs/integration.md):
#
# 1. POST /oauth2/token (client_secret_basic, grant_type=client_credentials).
#    A fresh token is fetched for every request, because a client whose token
#    policy is `one_time` gets tokens that the first request consumes.
# 2. POST /api/v1/imports with the file as the body, streamed by `curl -T`
#    (not read into memory as --data-binary would), with its Content-Type,
#    the options as query parameters, `wait` of at most 30 s and an
#    Idempotency-Key header.
# 3. GET /api/v1/imports/{id} every few seconds until the import is final or
#    the --wait budget is spent.
# 4. When rows failed, GET /api/v1/imports/{id}/errors?limit=20 and print
#    row, column, attribute, code and message (the API never returns a
#    cell's value, and nothing here prints one).
#
# Transient failures (connection errors and timeouts, 408, 429, 500, 502,
# 503, 504) are retried with exponential backoff and jitter, honouring
# Retry-After. An upload is always retried with the same Idempotency-Key, so
# a retry after a lost answer returns the import the first attempt made
# instead of importing the file twice. Any other 4xx, and a rejected or
# failed import, is final. (The one exception: `401 invalid_token` on an API
# request is retried once with a new token, as the docs advise.)
#
# Keeping the secret out of `ps`: curl never gets the secret or a token as an
# argument. Each curl reads them from a config given on its standard input
# (`curl -K -`, fed by bash's builtin printf through a pipe, so no process's
# argument list holds them and no temporary file is written):
#   token request:  user = "CLIENT_ID:SECRET"           (client_secret_basic)
#   API requests:   header = "Authorization: Bearer TOKEN"
# MUSTER_CLIENT_SECRET is also removed from the environment curl inherits.
# The answers are kept in a private temporary directory (0700) removed on
# exit. The secret, the tokens and the file's contents are never printed.

set -euo pipefail

readonly EXIT_OK=0 EXIT_FAILED=1 EXIT_USAGE=2 EXIT_ROW_ERRORS=3
# The gateway holds the upload's answer at most this long (longer requests
# risk the idle timeouts of proxies); after that the script polls.
readonly SERVER_WAIT_MAX=30
readonly SHOWN_ERRORS=20
# "Poll it every few seconds": 1 s, then 2, 4, and 5 s from then on.
readonly POLL_FIRST=1 POLL_MAX=5
# Retry pauses: about 1, 2, 4, 8 ... s (at most 30), with jitter; a
# Retry-After is honoured up to 300 s.
readonly BACKOFF_MAX=30 RETRY_AFTER_MAX=300
readonly USER_AGENT="muster-example-push.sh/1"

prog=push.sh
log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() {
    log "$*"
    exit "$EXIT_FAILED"
}

usage() {
    cat <<'EOF'
usage: push.sh FILE [--mapping NAME] [--mode upsert|snapshot] [--dry-run]
                    [--format csv|jsonl|scim] [--wait SECONDS]
                    [--idempotency-key K] [--retries N]
                    [--delimiter C] [--on-behalf-of WHO]

Pushes FILE to the gateway at MUSTER_URL as the client MUSTER_CLIENT_ID
(secret in MUSTER_CLIENT_SECRET or MUSTER_CLIENT_SECRET_FILE).
Exit codes: 0 succeeded; 3 succeeded with row errors; 1 rejected, failed,
not final in time, or an authentication, network or gateway error; 2 usage.
EOF
}

usage_error() {
    log "$*"
    usage >&2
    exit "$EXIT_USAGE"
}

# ---- small helpers ----------------------------------------------------------

# Percent-encodes $1 (RFC 3986 unreserved characters stay), byte by byte.
urlencode() {
    local LC_ALL=C
    local s=$1 out='' c i
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        case $c in
        [a-zA-Z0-9.~_-]) out+=$c ;;
        *)
            printf -v c '%%%02X' "'$c"
            out+=$c
            ;;
        esac
    done
    printf '%s' "$out"
}

# $1 quoted for a curl config file: inside "...", \ and " are escaped.
cfg_quote() {
    local s=${1//\\/\\\\}
    printf '"%s"' "${s//\"/\\\"}"
}

trim() {
    local s=$1
    s=${s#"${s%%[![:space:]]*}"}
    s=${s%"${s##*[![:space:]]}"}
    printf '%s' "$s"
}

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

# ---- JSON -------------------------------------------------------------------
#
# json_parse TEXT fills the associative array J with one entry per scalar,
# keyed by its path: J[id], J[counts.failed], J[items.0.code], and with the
# length of each array under PATH.# (J[items.#]). Values are the JSON tokens
# as received (strings with their quotes and escapes); json_str decodes one.
# Enough for the gateway's answers; not a validating parser.

declare -A J=()
declare -a JT=()
JI=0
readonly JSON_TOKEN='"([^"\\]|\\.)*"|-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?|true|false|null|[][{}:,]'

json_parse() {
    J=()
    JT=()
    mapfile -t JT < <(printf '%s' "$1" | LC_ALL=C grep -oE "$JSON_TOKEN" || true)
    JI=0
    json_value "" || return 1
    ((JI == ${#JT[@]}))
}

json_value() {
    local path=$1 tok key n=0
    ((JI < ${#JT[@]})) || return 1
    tok=${JT[JI]}
    JI=$((JI + 1))
    case $tok in
    '{')
        if [[ ${JT[JI]-} == '}' ]]; then
            JI=$((JI + 1))
            return 0
        fi
        while :; do
            key=${JT[JI]-}
            [[ $key == \"*\" && ${JT[JI + 1]-} == : ]] || return 1
            key=${key:1:${#key}-2}
            JI=$((JI + 2))
            json_value "${path:+$path.}$key" || return 1
            tok=${JT[JI]-}
            JI=$((JI + 1))
            case $tok in
            ,) ;;
            '}') return 0 ;;
            *) return 1 ;;
            esac
        done
        ;;
    '[')
        if [[ ${JT[JI]-} == ']' ]]; then
            JI=$((JI + 1))
            J["${path:+$path.}#"]=0
            return 0
        fi
        while :; do
            json_value "${path:+$path.}$n" || return 1
            n=$((n + 1))
            tok=${JT[JI]-}
            JI=$((JI + 1))
            case $tok in
            ,) ;;
            ']')
                J["${path:+$path.}#"]=$n
                return 0
                ;;
            *) return 1 ;;
            esac
        done
        ;;
    '}' | ']' | , | :) return 1 ;;
    *) J["${path:-.}"]=$tok ;;
    esac
}

# json_str VAR RAW: VAR is RAW decoded (a string unquoted and unescaped;
# \uXXXX escapes are left as they are; anything else as it is).
json_str() {
    local s=$2
    if [[ $s == \"*\" ]]; then
        s=${s:1:${#s}-2}
        s=${s//\\\\/$'\001'}
        s=${s//\\\"/\"}
        s=${s//\\\//\/}
        s=${s//\\n/ }
        s=${s//\\r/ }
        s=${s//\\t/ }
        s=${s//$'\001'/\\}
    fi
    printf -v "$1" '%s' "$s"
}

# jget VAR PATH [DEFAULT]: VAR is the decoded value at PATH, else DEFAULT
# (else empty); null counts as absent.
jget() {
    local raw=${J[$2]-null}
    if [[ $raw == null ]]; then
        printf -v "$1" '%s' "${3-}"
    else
        json_str "$1" "$raw"
    fi
}

# A refusal as one line: the problem's code and detail, or the OAuth error
# and its description (neither ever holds a secret or a cell's value).
problem_text() {
    local file=$1 status=$2 code detail text
    text="HTTP $status"
    if [[ -s $file ]] && json_parse "$(<"$file")"; then
        jget code code
        [[ -n $code ]] || jget code error
        jget detail detail
        [[ -n $detail ]] || jget detail error_description
        [[ -z $code ]] || text+=" $code"
        [[ -z $detail ]] || text+=": $detail"
    fi
    printf '%s' "$text"
}

# ---- HTTP -------------------------------------------------------------------

STATUS=''
TOKEN=''

retry_after() { # headers file -> seconds, or nothing
    local v
    v=$(grep -i '^retry-after:' "$1" 2>/dev/null | tail -n 1 | sed 's/^[^:]*:[[:space:]]*//; s/[[:space:]]*$//') || true
    if is_uint "$v"; then
        ((v <= RETRY_AFTER_MAX)) || v=$RETRY_AFTER_MAX
        printf '%s' "$v"
    fi
}

backoff() { # attempt -> seconds: between half of and 2^attempt, at most BACKOFF_MAX
    local ceiling=$((1 << $1)) half
    ((ceiling <= BACKOFF_MAX)) || ceiling=$BACKOFF_MAX
    half=$(((ceiling + 1) / 2))
    printf '%s' $((half + RANDOM % (ceiling - half + 1)))
}

# send KIND WHAT CURL-ARGS...: one request, retried on transient failures.
#   KIND token: authenticated with the client secret;
#   KIND api:   with a fresh access token, fetched for each attempt.
# Sets STATUS; the answer's body is in $tmp/KIND.body, its headers in
# $tmp/KIND.headers. Returns 1, having said why, when it gave up.
send() {
    local kind=$1 what=$2
    shift 2
    local attempt=0 renewed=0 rc status reason pause cfg
    local extra=()
    if [[ $kind == api && -n $on_behalf_of ]]; then
        extra=(-H "On-Behalf-Of: $on_behalf_of")
    fi
    while :; do
        if [[ $kind == api ]]; then
            fetch_token || return 1
            cfg="header = $(cfg_quote "Authorization: Bearer $TOKEN")"
        else
            cfg=$BASIC_CFG
        fi
        rm -f "$tmp/$kind.body" "$tmp/$kind.headers"
        rc=0
        # -q: no ~/.curlrc. -K -: the credential, from the pipe (see the top).
        # --speed-*: a connection silent for 90 s (longer than the 30 s the
        # gateway may hold an answer) counts as lost and is retried.
        status=$(printf '%s\n' "$cfg" | curl -q -K - --silent --show-error \
            --connect-timeout 10 --speed-limit 1 --speed-time 90 \
            --user-agent "$USER_AGENT" ${extra[@]+"${extra[@]}"} \
            --output "$tmp/$kind.body" --dump-header "$tmp/$kind.headers" \
            --write-out '%{http_code}' "$@") || rc=$?
        pause=''
        if ((rc != 0)); then
            case $rc in
            # couldn't resolve, connect; partial file; timeout; TLS connect;
            # empty reply; send/receive error; HTTP/2 errors
            5 | 6 | 7 | 16 | 18 | 28 | 35 | 52 | 55 | 56 | 92) reason="curl exit $rc" ;;
            *)
                log "$what: curl failed (exit $rc)"
                return 1
                ;;
            esac
        else
            case $status in
            408 | 429 | 500 | 502 | 503 | 504)
                reason=$(problem_text "$tmp/$kind.body" "$status")
                pause=$(retry_after "$tmp/$kind.headers")
                ;;
            401)
                # An API request's token was refused (expired, or a one-time
                # token already used): a new token, once.
                if [[ $kind == api ]] && ((renewed == 0)) &&
                    [[ $(problem_text "$tmp/$kind.body" "$status") == "HTTP 401 invalid_token"* ]]; then
                    renewed=1
                    log "$what: the token was refused; retrying once with a new one"
                    continue
                fi
                STATUS=$status
                return 0
                ;;
            *)
                STATUS=$status
                return 0
                ;;
            esac
        fi
        if ((attempt >= RETRIES)); then
            log "$what: $reason (gave up after $((attempt + 1)) attempts)"
            return 1
        fi
        [[ -n $pause ]] || pause=$(backoff "$attempt")
        log "$what: $reason; retrying in $pause s"
        sleep "$pause"
        attempt=$((attempt + 1))
    done
}

# Sets TOKEN to a fresh access token.
fetch_token() {
    local body re='"access_token"[[:space:]]*:[[:space:]]*"([^"\\]+)"'
    send token "token request" --data grant_type=client_credentials "$BASE/oauth2/token" || return 1
    if [[ $STATUS != 200 ]]; then
        log "token request refused: $(problem_text "$tmp/token.body" "$STATUS")"
        return 1
    fi
    body=$(<"$tmp/token.body")
    rm -f "$tmp/token.body"
    if [[ $body =~ $re ]]; then
        TOKEN=${BASH_REMATCH[1]}
    else
        log "token request: the answer holds no access_token"
        return 1
    fi
}

# read_import FILE: the import in FILE into imp_* variables.
read_import() {
    json_parse "$(<"$1")" || return 1
    jget imp_id id
    jget imp_state state
    jget imp_dry_run dry_run false
    jget c_total counts.rows_total 0
    jget c_created counts.created 0
    jget c_updated counts.updated 0
    jget c_unchanged counts.unchanged 0
    jget c_deactivated counts.deactivated 0
    jget c_failed counts.failed 0
    jget err_code error.code
    jget err_message error.message
    [[ -n $imp_id && -n $imp_state ]]
}

is_final() {
    case $1 in
    succeeded | succeeded_with_errors | rejected | failed) return 0 ;;
    *) return 1 ;;
    esac
}

# ---- arguments --------------------------------------------------------------

file='' mapping='' mode='' dry_run=0 format='' wait_s=600 key='' RETRIES=4
delimiter='' on_behalf_of=''
have_file=0 key_given=0
args=()
for a in "$@"; do # --opt=value becomes --opt value
    case $a in
    --*=*) args+=("${a%%=*}" "${a#*=}") ;;
    *) args+=("$a") ;;
    esac
done
set -- ${args[@]+"${args[@]}"}
need() { (($# >= 2)) || usage_error "$1 needs a value"; }
while (($# > 0)); do
    case $1 in
    -h | --help)
        usage
        exit "$EXIT_OK"
        ;;
    --mapping) need "$@"; mapping=$2; shift 2 ;;
    --mode) need "$@"; mode=$2; shift 2 ;;
    --format) need "$@"; format=$2; shift 2 ;;
    --wait) need "$@"; wait_s=$2; shift 2 ;;
    --idempotency-key) need "$@"; key=$2; key_given=1; shift 2 ;;
    --retries) need "$@"; RETRIES=$2; shift 2 ;;
    --delimiter) need "$@"; delimiter=$2; shift 2 ;;
    --on-behalf-of) need "$@"; on_behalf_of=$2; shift 2 ;;
    --dry-run) dry_run=1; shift ;;
    --)
        shift
        break
        ;;
    -?*) usage_error "unknown option: $1" ;;
    *)
        ((have_file == 0)) || usage_error "one FILE only"
        file=$1
        have_file=1
        shift
        ;;
    esac
done
if (($# > 0)); then
    ((have_file == 0 && $# == 1)) || usage_error "one FILE only"
    file=$1
    have_file=1
fi
((have_file == 1)) || usage_error "FILE is required"
case $mode in '' | upsert | snapshot) ;; *) usage_error "--mode: upsert or snapshot" ;; esac
is_uint "$wait_s" || usage_error "--wait: a whole number of seconds"
is_uint "$RETRIES" || usage_error "--retries: a whole number"
wait_s=$((10#$wait_s))
RETRIES=$((10#$RETRIES))
if [[ -z $format ]]; then
    name=${file##*/}
    name=${name,,}
    case $name in *.gpg | *.pgp | *.asc | *.age) name=${name%.*} ;; esac
    case $name in
    *.csv) format=csv ;;
    *.jsonl | *.ndjson) format=jsonl ;;
    *) usage_error "cannot tell the format of $file from its name: pass --format csv, jsonl or scim" ;;
    esac
fi
case $format in
csv) ctype=text/csv ;;
jsonl) ctype=application/x-ndjson ;;
scim) ctype=application/scim+json ;;
*) usage_error "--format: csv, jsonl or scim" ;;
esac
if [[ $format == scim ]]; then
    [[ -z $mapping ]] || usage_error "--mapping: a SCIM file is read by the SCIM User mapping; leave it out"
else
    [[ -n $mapping ]] || usage_error "--mapping is required (the name of a stored mapping)"
fi
if ((key_given == 0)); then
    if [[ -r /proc/sys/kernel/random/uuid ]]; then
        key=$(</proc/sys/kernel/random/uuid)
    else
        printf -v key '%04x%04x-%04x-4%03x-%04x-%04x%04x%04x' \
            $RANDOM $RANDOM $RANDOM $((RANDOM & 0xfff)) $(((RANDOM & 0x3fff) | 0x8000)) \
            $RANDOM $RANDOM $RANDOM
    fi
elif [[ -z $key ]] || ((${#key} > 255)) || [[ -n $(
    LC_ALL=C
    printf '%s' "${key//[ -~]/}"
) ]]; then
    usage_error "--idempotency-key: 1 to 255 printable ASCII characters"
fi
if [[ -n $delimiter && $delimiter != tab && ${#delimiter} -ne 1 ]]; then
    usage_error "--delimiter: one character, or 'tab'"
fi

# ---- configuration ----------------------------------------------------------

BASE=$(trim "${MUSTER_URL:-}")
BASE=${BASE%/}
[[ -n $BASE ]] || die "set MUSTER_URL to the gateway's base URL"
client_id=$(trim "${MUSTER_CLIENT_ID:-}")
[[ -n $client_id ]] || die "no credentials: set MUSTER_CLIENT_ID, and MUSTER_CLIENT_SECRET or MUSTER_CLIENT_SECRET_FILE"
if [[ -n ${MUSTER_CLIENT_SECRET+set} && -n ${MUSTER_CLIENT_SECRET_FILE+set} ]]; then
    die "set MUSTER_CLIENT_SECRET or MUSTER_CLIENT_SECRET_FILE, not both"
elif [[ -n ${MUSTER_CLIENT_SECRET_FILE+set} ]]; then
    [[ -r $MUSTER_CLIENT_SECRET_FILE ]] || die "cannot read MUSTER_CLIENT_SECRET_FILE ($MUSTER_CLIENT_SECRET_FILE)"
    secret=$(<"$MUSTER_CLIENT_SECRET_FILE") || die "cannot read MUSTER_CLIENT_SECRET_FILE ($MUSTER_CLIENT_SECRET_FILE)"
elif [[ -n ${MUSTER_CLIENT_SECRET+set} ]]; then
    secret=$MUSTER_CLIENT_SECRET
    export -n MUSTER_CLIENT_SECRET # curl need not inherit it
else
    die "no client secret: set MUSTER_CLIENT_SECRET or MUSTER_CLIENT_SECRET_FILE"
fi
secret=$(trim "$secret")
[[ -n $secret ]] || die "the client secret is empty"
[[ -f $file && -r $file ]] || die "$file: not a readable file"

# RFC 6749 2.3.1: id and secret are form-urlencoded inside the Basic header
# (a no-op for the ids and secrets the gateway generates).
BASIC_CFG="user = $(cfg_quote "$(urlencode "$client_id"):$(urlencode "$secret")")"
unset secret

umask 077
tmp=$(mktemp -d "${TMPDIR:-/tmp}/muster-push.XXXXXX") || die "cannot make a temporary directory"
trap 'rm -rf "$tmp"' EXIT
trap 'exit $EXIT_FAILED' INT TERM HUP

# ---- the run ----------------------------------------------------------------

server_wait=$((wait_s < SERVER_WAIT_MAX ? wait_s : SERVER_WAIT_MAX))
query="wait=$server_wait"
[[ -z $mapping ]] || query+="&mapping=$(urlencode "$mapping")"
[[ -z $mode ]] || query+="&mode=$mode"
((dry_run == 0)) || query+="&dry_run=true"
[[ -z $delimiter ]] || query+="&delimiter=$(urlencode "$delimiter")"

deadline=$((SECONDS + wait_s))
# -T streams the file from disk with its Content-Length; -X POST because -T
# alone would PUT. The same Idempotency-Key on every attempt: a retry cannot
# import twice.
send api upload -X POST -T "$file" \
    -H "Content-Type: $ctype" -H "Idempotency-Key: $key" \
    "$BASE/api/v1/imports?$query" || exit "$EXIT_FAILED"
case $STATUS in
200 | 202) ;;
*) die "upload refused: $(problem_text "$tmp/api.body" "$STATUS")" ;;
esac
read_import "$tmp/api.body" || die "upload: HTTP $STATUS with an answer that is not an import"
log "import $imp_id $imp_state (Idempotency-Key $key)"
id_path="/api/v1/imports/$(urlencode "$imp_id")"

pause=$POLL_FIRST
while ! is_final "$imp_state"; do
    left=$((deadline - SECONDS))
    ((left > 0)) || break
    sleep $((pause < left ? pause : left))
    pause=$((pause * 2 < POLL_MAX ? pause * 2 : POLL_MAX))
    send api "status poll" "$BASE$id_path" || exit "$EXIT_FAILED"
    [[ $STATUS == 200 ]] || die "import $imp_id: status poll refused: $(problem_text "$tmp/api.body" "$STATUS")"
    read_import "$tmp/api.body" || die "status poll: an answer that is not an import"
done

if ((c_failed > 0)); then
    if send api "listing the row errors" "$BASE$id_path/errors?limit=$SHOWN_ERRORS" &&
        [[ $STATUS == 200 ]] && json_parse "$(<"$tmp/api.body")"; then
        n=${J[items.#]:-0}
        printf 'row errors (%d of %d):\n' "$n" "$c_failed"
        for ((i = 0; i < n; i++)); do
            jget e_row "items.$i.row"
            jget e_column "items.$i.column"
            jget e_attribute "items.$i.attribute"
            jget e_code "items.$i.code"
            jget e_message "items.$i.message"
            where=''
            [[ -z $e_column ]] || where+=" column \"$e_column\""
            [[ -z $e_attribute ]] || where+=" ($e_attribute)"
            printf '  row %s%s: %s: %s\n' "$e_row" "$where" "$e_code" "$e_message"
        done
        if ((c_failed > n)); then
            printf '  ... and %d more: GET %s/errors\n' $((c_failed - n)) "$id_path"
        fi
    else
        # The import's result stands; only its details are missing.
        log "cannot list the row errors${STATUS:+ (HTTP $STATUS)}"
    fi
fi

dry=''
[[ $imp_dry_run != true ]] || dry=' (dry run)'
printf 'import %s %s%s: %s rows: %s created, %s updated, %s unchanged, %s deactivated, %s failed\n' \
    "$imp_id" "$imp_state" "$dry" "$c_total" "$c_created" "$c_updated" "$c_unchanged" \
    "$c_deactivated" "$c_failed"

if ! is_final "$imp_state"; then
    die "import $imp_id is still $imp_state after $wait_s s; it goes on in the gateway (GET $id_path)"
fi
[[ -z $err_code ]] || log "import $imp_id $imp_state: $err_message ($err_code)"
case $imp_state in
succeeded) exit "$EXIT_OK" ;;
succeeded_with_errors) exit "$EXIT_ROW_ERRORS" ;;
rejected)
    log "fix the cause and send the file again with a new Idempotency-Key (this one keeps answering with the rejected import)"
    exit "$EXIT_FAILED"
    ;;
*) exit "$EXIT_FAILED" ;;
esac
