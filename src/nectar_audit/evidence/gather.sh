# shellcheck shell=sh
# The helpers of nectar-audit's one-pass gatherer (evidence/script.py puts them after a header that sets
# BOUNDARY, MAX_FILE_BYTES, READ_ERRORS, HIT_READ_ERRORS and STAT_FORMAT, and before the calls it
# generates from the Needs).
# Reads only; writes nothing but its scratch directory, which it removes.
#
# Output is a framed stream: each record starts with "\n$BOUNDARY KIND NAME\n" and ends with
# "\n$BOUNDARY E STATUS"; the boundary is random per run, so file contents never need escaping. A name
# the host chose (a file's) is written as "BYTES:NAME" (LC_ALL=C: ${#p} counts bytes), so a newline in
# it is data. Kinds: F file, U unreadable file, H a search hit's content, C command output, S a
# command's stderr, X a search's hits (NUL-separated).

LC_ALL=C; export LC_ALL
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH; export PATH
umask 077
# The scratch files (about a hundred) go to memory where it can: creating them on ext4 costs a tenth
# of the gather's CPU.
SCRATCH=
if [ -z "$TMPDIR" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then
  SCRATCH=$(mktemp -d /dev/shm/nectar-audit.XXXXXXXX 2>/dev/null)
fi
[ -n "$SCRATCH" ] || SCRATCH=$(mktemp -d 2>/dev/null) || { SCRATCH=/tmp/nectar-audit.$$; mkdir -m 700 "$SCRATCH" || exit 70; }
trap 'rm -rf "$SCRATCH"' EXIT
if command -v timeout >/dev/null 2>&1; then
  with_timeout() { timeout "$@"; }
else
  with_timeout() { shift; "$@"; }
fi
printf '\n%s E 0\n' "$BOUNDARY" >"$SCRATCH/footer"
headers=0

# A regular file that is there: readable, or recorded as not (and skipped).
readable_file() {
  [ -f "$1" ] || return 1
  [ -r "$1" ] && return 0
  printf '\n%s U %s:%s\nPermission denied\n%s E 1\n' "$BOUNDARY" "${#1}" "$1" "$BOUNDARY"; return 1
}

# The end of a part of the gather ($1: files, stats, commands, searches): what a cut-off stream
# lacks from a part that ended is absent, not unknown.
part_done() {
  printf '\n%s C __done__\n%s\n%s E 0\n' "$BOUNDARY" "$1" "$BOUNDARY"
}

# The end of a file record one command read ($1 its status): on failure, its complaint.
end_file_record() {
  printf '\n%s E %s\n' "$BOUNDARY" "$1"
  [ "$1" = 0 ] || { printf '\n%s U %s:%s\n' "$BOUNDARY" "${#2}" "$2"; cat "$SCRATCH/err"; printf '\n%s E 1\n' "$BOUNDARY"; }
}

# Files are read in batches by one head each, every file framed by a header file and the shared
# footer, and each capped by head itself (-q: no "==> name <==" lines): one process for hundreds of
# files, and a sparse giant costs its cap, not its size. head's complaints name the files they concern.
# head's arguments are gathered as one quoted string, not by `set -- "$@" ...`, which copies the whole
# list on every file. After "--dedup" come the patterns that may match a file another pattern matches
# too (named.conf*, *.conf): each such file is read once. Only those are checked, because dash's case
# matching against the list of files seen costs more than the loop itself at a hundred files. After
# "--lib" come /lib patterns whose /usr/lib twins were asked too: where /lib is /usr/lib (merged /usr,
# every current distribution) they are the same files, read once under /usr/lib.
read_files() {
  batch=; dedup=; seen='
'
  for p do
    [ "$p" = --dedup ] && { dedup=1; continue; }
    if [ "$p" = --lib ]; then
      # shellcheck disable=SC3013 # -ef: dash, bash and busybox have it; a shell without it reads both
      [ /lib -ef /usr/lib ] && break
      dedup=1; continue
    fi
    if [ -n "$dedup" ]; then
      case $seen in *"
$p
"*) continue ;; esac
      seen="$seen$p
"
    fi
    readable_file "$p" || continue
    case $p in
      /home/*|/tmp/*|/var/tmp/*|/dev/shm/*)
        # Any user may write here: read later, capped, as their own part (user_files).
        case $p in
          *"'"*) deferred="$deferred '$(printf '%s' "$p" | sed "s/'/'\\\\''/g")'" ;;
          *) deferred="$deferred '$p'" ;;
        esac
        continue ;;
      *"'"*)
        printf '\n%s F %s:%s\n' "$BOUNDARY" "${#p}" "$p"
        head -c "$MAX_FILE_BYTES" -- "$p" 2>"$SCRATCH/err"; end_file_record $? "$p" ;;
      *)
        headers=$((headers+1))
        printf '\n%s F %s:%s\n' "$BOUNDARY" "${#p}" "$p" >"$SCRATCH/h$headers"
        batch="$batch \"\$SCRATCH/h$headers\" '$p' \"\$SCRATCH/footer\"" ;;
    esac
  done
  [ -n "$batch" ] || return 0
  eval "head -q -c $MAX_FILE_BYTES -- $batch" 2>"$SCRATCH/read-err"
  read_errors "$READ_ERRORS"
}

# head's complaints about the files of a batch ($1 the record's name), if it made any.
read_errors() {
  if [ -s "$SCRATCH/read-err" ]; then
    printf '\n%s C %s\n' "$BOUNDARY" "$1"; head -c 65536 "$SCRATCH/read-err"; printf '\n%s E 0\n' "$BOUNDARY"
  fi
}

# Files where any user may write (homes, /tmp), deferred by read_files: after everything else, so that
# what a user plants can at most leave this part incomplete; each read up to MAX_USER_FILE_BYTES by one
# head, as read_files does.
deferred=
# shellcheck disable=SC2120 # its arguments are the deferred names it sets itself
read_user_files() {
  [ -n "$deferred" ] || return 0
  eval "set -- $deferred"
  batch='' i=0
  for p do
    i=$((i+1))
    headers=$((headers+1))
    printf '\n%s F %s:%s\n' "$BOUNDARY" "${#p}" "$p" >"$SCRATCH/h$headers"
    batch="$batch \"\$SCRATCH/h$headers\" \"\${$i}\" \"\$SCRATCH/footer\""
  done
  eval "head -q -c $MAX_USER_FILE_BYTES -- $batch" 2>"$SCRATCH/read-err"
  read_errors "$READ_ERRORS"
}

# Files whose sanitizer keeps a few lines of megabytes (dpkg's status, apt's lists) go through grep -E
# with the expression the fact module declared ($1): the sanitizer keeps the same lines from either.
grep_files() {
  expr=$1; shift
  for p do
    readable_file "$p" || continue
    printf '\n%s F %s:%s\n' "$BOUNDARY" "${#p}" "$p"
    grep -E -e "$expr" -- "$p" 2>"$SCRATCH/err"; r=$?
    [ "$r" = 1 ] && [ ! -s "$SCRATCH/err" ] && r=0  # no line matched: read, and empty
    end_file_record "$r" "$p"
  done
}

# A background command ($2, a function) writes its whole record (output, status, stderr) to its own
# file ($1 its number, $3 its name), so that one cat emits every command's record at the end. It runs
# in the background shell itself, not in a subshell of it (a process less per command): an `exit` in it
# ends that shell, and the EXIT trap ends the record, with the status, either way. (build_script refuses
# a snippet that would exec or set a trap of its own.)
run_command() {
  exec </dev/null >"$SCRATCH/o$1" 2>"$SCRATCH/e$1"
  printf '\n%s C %s\n' "$BOUNDARY" "$3"
  # shellcheck disable=SC2064 # the number and name are meant to be expanded now
  trap "command_done \$? $1 $3" EXIT
  "$2"
}

# The end of a command's record ($1 its status, $2 its number, $3 its name), and its stderr if any.
command_done() {
  exec 2>/dev/null
  printf '\n%s E %s\n' "$BOUNDARY" "$1"
  if [ -s "$SCRATCH/e$2" ]; then
    printf '\n%s S %s\n' "$BOUNDARY" "$3"; head -c 65536 "$SCRATCH/e$2"; printf '\n%s E 0\n' "$BOUNDARY"
  fi
}

# Every search's hits ($@: pairs of a search's number and name): each search's names as one X record,
# NUL-separated as grep -lZ wrote them; then every hit's content as an H record, capped, read by one
# head per 200 names that xargs -0 hands an sh, so a name with a newline (or any byte) is one name, and
# a login node's thousands of keys cost few processes. head's complaints go to their own record: they
# concern only the H records (a hit never replaces a file read for another purpose).
read_search_hits() {
  rs_x='' rs_hits=''
  while [ $# -ge 2 ]; do
    printf '\n%s X %s\n' "$BOUNDARY" "$2" >"$SCRATCH/xh$1"
    rs_x="$rs_x \"\$SCRATCH/xh$1\" \"\$SCRATCH/x$1\" \"\$SCRATCH/footer\""
    rs_hits="$rs_hits \"\$SCRATCH/x$1\""
    shift 2
  done
  [ -n "$rs_x" ] || return 0
  eval "cat -- $rs_x"
  : >"$SCRATCH/read-err"
  # shellcheck disable=SC2016 # expanded by the sh that xargs starts
  eval "cat -- $rs_hits" | xargs -0 -r -n 200 sh -c '
    s=$1; shift; i=0 batch=
    for p do
      i=$((i+1))
      [ -f "$p" ] || continue
      if [ ! -r "$p" ]; then
        printf "\n%s U %s:%s\nPermission denied\n%s E 1\n" "$BOUNDARY" "${#p}" "$p" "$BOUNDARY"; continue
      fi
      printf "\n%s H %s:%s\n" "$BOUNDARY" "${#p}" "$p" >"$s/hh$i"
      batch="$batch \"\$s/hh$i\" \"\${$i}\" \"\$s/footer\""
    done
    [ -z "$batch" ] || eval "head -q -c \"\$MAX_FILE_BYTES\" -- $batch" 2>>"$s/read-err"' sh "$SCRATCH"
  read_errors "$HIT_READ_ERRORS"
}

# Files named by include directives (sudoers' @include, #includedir), found level by level from the
# files given: $1 the number of this following, $2 the depth limit, $3 the cap on files, $4 an ERE of
# the directive lines, then the files to start from. follow_kind_$1 tells a directive naming a file
# (status 1) from one naming a directory (2); follow_skip_$1 the directory entries never read. The
# files found, NUL-terminated, go to $SCRATCH/xf$1, which read_search_hits then reads.
follow_includes() {
  fo_n=$1 fo_depth=$2 fo_max=$3 fo_re=$4; shift 4
  # The node name as uname -n prints it, read without starting a process where /proc has it.
  { read -r fo_host </proc/sys/kernel/hostname; } 2>/dev/null || fo_host=$(uname -n 2>/dev/null)
  fo_host=${fo_host%%.*}
  fo_out="$SCRATCH/xf$fo_n" fo_level="$SCRATCH/fl$fo_n" fo_next="$SCRATCH/fn$fo_n" fo_lines="$SCRATCH/fg$fo_n"
  : >"$fo_out"
  printf '%s\n' "$@" >"$fo_level"
  fo_seen='
'
  fo_count=0 fo_d=0
  while [ -s "$fo_level" ] && [ "$fo_d" -le "$fo_depth" ]; do
    : >"$fo_next"
    while IFS= read -r fo_p; do
      case $fo_seen in *"
$fo_p
"*) continue ;; esac
      fo_seen="$fo_seen$fo_p
"
      [ -f "$fo_p" ] || continue
      fo_count=$((fo_count+1))
      [ "$fo_count" -le "$fo_max" ] || break 2
      printf '%s\0' "$fo_p" >>"$fo_out"
      [ -r "$fo_p" ] || continue
      # Through a file, not a pipe: follow_line then runs in this shell (a process less per file).
      grep -E -e "$fo_re" -- "$fo_p" >"$fo_lines" 2>/dev/null
      follow_line "$fo_n" "${fo_p%/*}" "$fo_host" <"$fo_lines" >>"$fo_next"
    done <"$fo_level"
    # The next level becomes this one by swapping the two names (no mv process per level).
    fo_tmp=$fo_level fo_level=$fo_next fo_next=$fo_tmp
    fo_d=$((fo_d+1))
  done
}

# The paths the include lines on stdin name ($1 the following, $2 the including file's directory, $3
# the short host name): quotes and backslash escapes removed, %h expanded, relative paths made absolute.
# A name with a newline is never listed (it would read as two paths).
follow_line() {
  while IFS= read -r fl_l; do
    fl_l=${fl_l#"${fl_l%%[![:space:]]*}"}
    fl_kw=${fl_l%%[[:space:]]*}
    fl_a=${fl_l#"$fl_kw"}
    fl_a=${fl_a#"${fl_a%%[![:space:]]*}"}
    fl_a=${fl_a%"${fl_a##*[![:space:]]}"}
    case $fl_a in \"*\") fl_a=${fl_a#\"}; fl_a=${fl_a%\"} ;; esac
    case $fl_a in *\\*) fl_a=$(printf '%s\n' "$fl_a" | sed 's/\\\(.\)/\1/g') ;; esac
    while :; do
      case $fl_a in *%h*) fl_a="${fl_a%%"%h"*}$3${fl_a#*"%h"}" ;; *) break ;; esac
    done
    case $fl_a in '') continue ;; /*) ;; *) fl_a="$2/$fl_a" ;; esac
    "follow_kind_$1" "$fl_kw"
    case $? in
      1) printf '%s\n' "$fl_a" ;;
      2) for fl_f in "$fl_a"/*; do
           [ -f "$fl_f" ] || continue
           case ${fl_f##*/} in *"
"*) continue ;; esac
           "follow_skip_$1" "${fl_f##*/}" && continue
           printf '%s\n' "$fl_f"
         done ;;
    esac
  done
}
