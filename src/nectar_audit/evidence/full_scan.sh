MAX_FILE_BYTES=16777217 MAX_USER_FILE_BYTES=1048577 READ_ERRORS=__read_errors__ STAT_FORMAT='%f %u %g %s %Y %n\0'
export BOUNDARY MAX_FILE_BYTES
# @gather.sh@

printf '\n%s C %s\n' "$BOUNDARY" __uid__; id -u; printf '\n%s E 0\n' "$BOUNDARY"
command_0() {
run=
for c in /proc/[0-9]*/comm; do
  { read -r n <"$c"; } 2>/dev/null || continue
  [ "$n" = fail2ban-server ] && { run=1; break; }
done
[ -n "$run" ] || { echo '#not-running'; exit 0; }
command -v fail2ban-client >/dev/null 2>&1 || { echo '#no-client'; exit 0; }
out=$(with_timeout 5 fail2ban-client status 2>&1); rc=$?
printf '#status %s\n%s\n' "$rc" "$out"
[ "$rc" = 0 ] || exit 0
list=${out##*Jail list:}
[ "$list" = "$out" ] && exit 0
n=0
IFS=',	 '
for j in $list; do
  case $j in *ssh*) ;; *) continue;; esac
  n=$((n+1)); [ $n -gt 4 ] && break
  o=$(with_timeout 5 fail2ban-client status "$j" 2>&1); r=$?
  printf '#jail %s %s\n%s\n' "$j" "$r" "$o"
done
:
}
run_command 0 command_0 banning.fail2ban &
command_1() {
[ -d /etc/fail2ban ] || [ -f /etc/denyhosts.conf ] || exit 0
set --
for s in /usr/sbin/sshd /usr/bin/sshd /usr/lib/openssh/sshd-session /usr/libexec/openssh/sshd-session; do
  [ -f "$s" ] && set -- "$@" "$s"
done
[ $# -gt 0 ] || exit 0
grep -c -- libwrap "$@" /dev/null 2>/dev/null
:
}
run_command 1 command_1 banning.libwrap &
command_2() {
set --
for f in /var/log/auth.log.1 /var/log/auth.log /var/log/secure-*[0-9] /var/log/secure.1 /var/log/secure; do
  [ -f "$f" ] && [ -r "$f" ] && set -- "$@" "$f"
done
if [ $# -gt 0 ]; then
  echo "#files $*"
  with_timeout 5 awk '/sshd(-session)?\[[0-9]+\]: (Failed password|Failed keyboard-interactive|Invalid user)/ { if ($1 ~ /^[0-9][0-9][0-9][0-9]-/) k = substr($1, 1, 10); else k = $1 " " $2; c[k]++ } END { for (k in c) print c[k], k }' "$@"
elif command -v journalctl >/dev/null 2>&1; then
  echo '#journal'
  with_timeout 5 journalctl -q --no-pager -o short-iso --since=-7d -t sshd -t sshd-session 2>/dev/null | awk '/sshd(-session)?\[[0-9]+\]: (Failed password|Failed keyboard-interactive|Invalid user)/ { if ($1 ~ /^[0-9][0-9][0-9][0-9]-/) k = substr($1, 1, 10); else k = $1 " " $2; c[k]++ } END { for (k in c) print c[k], k }'
else
  echo '#none'
fi
:
}
run_command 2 command_2 banning.failed_logins &
command_3() {
[ -f /var/log/fail2ban.log ] || { echo '#none'; exit 0; }
with_timeout 5 awk '/Starting Fail2ban/ { n = 0 }
  / ERROR / && (/Failed to execute/ || /returned [0-9]+/ || /stderr:/) { a[n++] = substr($0, 1, 400) }
  END { for (i = (n > 20 ? n - 20 : 0); i < n; i++) print a[i] }' /var/log/fail2ban.log
}
run_command 3 command_3 banning.fail2ban_log &
command_4() {
s=$(command -v sshd 2>/dev/null) || exit 127
[ "$(id -u)" = 0 ] || { echo '@@skipped not root'; exit 0; }
a=198.51.100.7
m=0 inc=
while read -r w v; do
  case $w in [Mm][Aa][Tt][Cc][Hh]) m=1; break;; esac
  inc="$inc $v"
done <<NA_EOF
$(grep -rhsiE '^[[:space:]]*(match|include)[[:space:]]' /etc/ssh)
NA_EOF
if [ "$m" = 0 ]; then
  for p in $inc; do
    case "$p" in /etc/ssh/*|[!/]*) ;; *) grep -qsiE '^[[:space:]]*match[[:space:]]' $p && m=1;; esac
  done
fi
set -- /etc/passwd
[ -r /etc/shadow ] && set -- /etc/shadow "$@"
{ echo root; echo nectar-new-user
  awk -F: 'FILENAME == "/etc/shadow" { if ($2 !~ /^[!*]/ && $2 != "x" && $2 != "NP" && $2 != "LK") ok[$1] = 1; next }
    { print $1 ":" ($2 == "x" ? ($1 in ok) : ($2 !~ /^[!*]/)) ":" $7 }' "$@" |
  while IFS=: read -r u pw sh || [ -n "$u" ]; do
    case "$u" in ''|root|nectar-new-user|[+-]*|*[!A-Za-z0-9._@-]*) continue;; esac
    case "$u:$sh" in *:*/nologin|*:*/false|*:*/true|*:/dev/null|sync:/bin/sync|sync:/usr/bin/sync|shutdown:/sbin/shutdown|shutdown:/usr/sbin/shutdown|halt:/sbin/halt|halt:/usr/sbin/halt) [ "$pw" = 1 ] || continue;; esac
    echo "$u"
  done
} | { n=0; r=1
  while read -r u; do
    n=$((n+1)); if [ "$n" -gt 34 ]; then echo '@@truncated'; break; fi
    echo "@@user $u"
    if [ "$n" -gt 1 ] && [ "$m" = 0 ] && [ "$r" = 0 ]; then echo '@@same root'; echo '@@rc 0'; continue; fi
    with_timeout 5 "$s" -T -C "user=$u,host=$a,addr=$a"
    r=$?; echo "@@rc $r"
  done; }
}
run_command 4 command_4 sshd.T &
command_5() {
set --
n=0
while IFS=: read -r _u _p _i _g _c h _s; do
  n=$((n+1)); [ $n -gt 5000 ] && break
  case $h in /|/home/*|/root|/dev/*|/proc/*|/sys/*|"") continue;; esac
  set -- "$@" "$h" "$h/.ssh/authorized_keys" "$h/.ssh/authorized_keys2"
  [ $# -lt 300 ] || { with_timeout 5 stat --printf "$STAT_FORMAT" -- "$@" 2>/dev/null; set --; }
done </etc/passwd
[ $# -gt 0 ] && with_timeout 5 stat --printf "$STAT_FORMAT" -- "$@" 2>/dev/null
:
}
run_command 5 command_5 accounts.homes &
command_6() {
if out=$(ps -eo pid:10=,ppid:10=,uid:10=,user:32=,comm:16=,args= 2>/dev/null) && [ -n "$out" ]; then
  echo '#ps'; printf '%s\n' "$out" | sed -E 's#(://)[^/@ ]+@#\1<redacted>@#g; s#([A-Za-z0-9_.-]*([Pp][Aa][Ss][Ss]|[Tt][Oo][Kk][Ee][Nn]|[Ss][Ee][Cc][Rr][Ee][Tt]|[Kk][Ee][Yy]|[Aa][Uu][Tt][Hh]|[Cc][Rr][Ee][Dd])[A-Za-z0-9_.-]*)(=| )[^ ]+#\1\3<redacted>#g'
else
  echo '#proc'; grep -H -e '^Name:' -e '^PPid:' -e '^Uid:' /proc/[0-9]*/status 2>/dev/null
fi
echo "#self $$"
}
run_command 6 command_6 processes.ps &
command_7() {
if [ -d /run/systemd/system ]; then
  echo '#enabled'
  with_timeout 10 systemctl list-unit-files --state=enabled --no-legend --no-pager 2>&1 || echo "#rc $?"
  echo '#running'
  with_timeout 10 systemctl list-units --type=service,socket,timer --state=running,listening,waiting \
    --no-legend --no-pager --plain 2>&1 || echo "#rc $?"
else
  echo '#nosystemd'
fi
}
run_command 7 command_7 services.systemctl &
command_8() {
if out=$(ss -tulpnHe 2>/dev/null) && [ -n "$out" ]; then
  echo '#ss'; printf '%s\n' "$out"
else
  echo '#proc'
  for f in /proc/net/tcp /proc/net/tcp6 /proc/net/udp /proc/net/udp6; do
    [ -r "$f" ] || continue
    echo "#file $f"
    while IFS= read -r l; do printf '%s\n' "$l"; done <"$f"
  done
  echo '#fd'
  find /proc/[0-9]*/fd -lname 'socket:*' -printf '%h %l\n' 2>/dev/null
fi
v=; read -r v 2>/dev/null </proc/sys/net/ipv6/bindv6only; echo "#bindv6only $v"
:
}
run_command 8 command_8 sockets.ss &
command_9() {
command -v ntpd >/dev/null 2>&1 || exit 127
with_timeout 5 ntpd --version 2>&1 | head -n 3
}
run_command 9 command_9 ntp.version &
command_10() {
na_fw_run() {
  # stdout alone when the command works: the *-save tools print warnings ("ip6tables-legacy tables
  # present") on stderr, and merged they land in the middle of a rule line. stdout+stderr when it fails.
  _na_o=$(with_timeout 10 "$@" 2>/dev/null) && { printf '%s\n' "$_na_o"; return 0; }
  _na_o=$(with_timeout 10 "$@" 2>&1); _na_r=$?
  printf '%s\n' "$_na_o"; return $_na_r
}
nft_out=$(na_fw_run nft -j list ruleset); nft_rc=$?
echo '#nft'; printf '%s\n' "$nft_out"; echo "#rc $nft_rc"
want_nft=1
if [ "$nft_rc" = 0 ]; then
  case "$nft_out" in *'"family": "ip", "name": "'*|*'"family": "ip6", "name": "'*) ;; *) want_nft=0 ;; esac
fi
variants=0
command -v iptables-legacy-save >/dev/null 2>&1 && variants=1
for t in iptables ip6tables; do
  if [ "$variants" = 1 ]; then
    names=/proc/net/ip_tables_names; [ "$t" = ip6tables ] && names=/proc/net/ip6_tables_names
    n=; read -r n 2>/dev/null <"$names"
    if [ -n "$n" ]; then echo "#$t-legacy-save"; na_fw_run "$t-legacy-save"; echo "#rc $?"; fi
    if [ "$want_nft" = 1 ] && command -v "$t-nft-save" >/dev/null 2>&1; then
      echo "#$t-nft-save"; na_fw_run "$t-nft-save"; echo "#rc $?"
    fi
  elif command -v "$t-save" >/dev/null 2>&1; then
    echo "#$t-save"; na_fw_run "$t-save"; echo "#rc $?"
  fi
done
:
}
run_command 10 command_10 firewall.rules &
command_11() {
for f in /proc/net/route /proc/net/ipv6_route /proc/net/dev; do
  [ -r "$f" ] || continue
  echo "#file $f"
  while IFS= read -r l; do printf '%s\n' "$l"; done <"$f"
done
:
}
run_command 11 command_11 firewall.ifaces &
command_12() {
command -v apt-config >/dev/null 2>&1 || exit 127
with_timeout 10 apt-config dump
}
run_command 12 command_12 apt.config &
command_13() {
sed -n 's/^btime //p' /proc/stat
}
run_command 13 command_13 kernel.btime &
command_14() {
command -v canonical-livepatch >/dev/null 2>&1 || exit 127
with_timeout 5 canonical-livepatch status
}
run_command 14 command_14 kernel.livepatch &
command_15() {
[ -s /var/lib/dpkg/status ] && exit 3
for d in /var/lib/rpm/rpmdb.sqlite /var/lib/rpm/Packages /var/lib/rpm/Packages.db /usr/lib/sysimage/rpm/rpmdb.sqlite /usr/lib/sysimage/rpm/Packages.db /usr/lib/sysimage/rpm/Packages; do [ -e "$d" ] && found=1; done
[ -n "$found" ] || exit 3
command -v rpm >/dev/null 2>&1 || exit 127
with_timeout 30 rpm -qa --qf '%{NAME}\t%{EPOCHNUM}\t%{VERSION}\t%{RELEASE}\t%{ARCH}\t%{INSTALLTIME}\n'
}
run_command 15 command_15 packages.rpm &
command_16() {
for f in /var/lib/apt/lists/*security*_Packages; do [ -f "$f" ] && exit 3; done
[ -x /usr/lib/apt/apt-helper ] || exit 127
n=0
for f in /var/lib/apt/lists/*security*_Packages.*; do
  [ -f "$f" ] || continue
  echo "#file $f"; n=1
  with_timeout 20 /usr/lib/apt/apt-helper cat-file "$f" | grep -E "^(Package|Version|Architecture|Source):|^$"
done
[ "$n" = 1 ] || exit 4
}
run_command 16 command_16 apt.security_lists &
command_17() {
n=0
set --
for f in /var/lib/apt/lists/*_Packages; do [ -f "$f" ] && set -- "$@" "$f"; done
if [ $# -gt 0 ]; then
  n=1
  k=$(with_timeout 20 grep -A 60 -F -e 'Package: linux-image-' -e 'Package: linux-generic' -e 'Package: linux-virtual' -e 'Package: linux-kvm' -e 'Package: linux-aws' -H -- "$@" | awk -v w=61 -v files="$(printf '%s\n' "$@")" 'BEGIN { nf = split(files, F, "\n"); i = 0 } function to(j) { while (i < j) { if (p) print ""; p = 0; i++; print "#file " F[i] } } $0 == "--" { if (p) print ""; p = 0; next } { l = $0; if (nf) { j = 0; for (k = i < 1 ? 1 : i; k <= nf; k++) if ((index($0, F[k] ":") == 1 || index($0, F[k] "-") == 1) && (!j || length(F[k]) > length(F[j]))) j = k; if (!j) next; to(j); l = substr($0, length(F[j]) + 2) } } l ~ /^Package: / { if (p) print ""; p = (l ~ /^Package: (linux-image-.+|linux-(generic|virtual|kvm|aws))$/); n = 0 } l == "" { if (p) print ""; p = 0; next } p { n++; if (n >= w) cut = 1; if (l ~ /^(Package|Version|Architecture|Source):/) print l } END { if (p) print ""; to(nf); if (cut) print "#cut" }')
  case "$k" in
    *"#cut"*) for f do echo "#file $f"; with_timeout 20 awk 'BEGIN{RS="";FS="\n"} $1 ~ /^Package: (linux-image-.+|linux-(generic|virtual|kvm|aws))$/ {for(i=1;i<=NF;i++) if ($i ~ /^(Package|Version|Architecture|Source):/) print $i; print ""}' "$f"; done ;;
    *) printf '%s\n\n' "$k" ;;
  esac
fi
for f in /var/lib/apt/lists/*_Packages.*; do
  [ -f "$f" ] && [ -x /usr/lib/apt/apt-helper ] || continue
  k=$(with_timeout 20 /usr/lib/apt/apt-helper cat-file "$f" | grep -A 60 -F -e 'Package: linux-image-' -e 'Package: linux-generic' -e 'Package: linux-virtual' -e 'Package: linux-kvm' -e 'Package: linux-aws' | awk -v w=61 -v files="" 'BEGIN { nf = split(files, F, "\n"); i = 0 } function to(j) { while (i < j) { if (p) print ""; p = 0; i++; print "#file " F[i] } } $0 == "--" { if (p) print ""; p = 0; next } { l = $0; if (nf) { j = 0; for (k = i < 1 ? 1 : i; k <= nf; k++) if ((index($0, F[k] ":") == 1 || index($0, F[k] "-") == 1) && (!j || length(F[k]) > length(F[j]))) j = k; if (!j) next; to(j); l = substr($0, length(F[j]) + 2) } } l ~ /^Package: / { if (p) print ""; p = (l ~ /^Package: (linux-image-.+|linux-(generic|virtual|kvm|aws))$/); n = 0 } l == "" { if (p) print ""; p = 0; next } p { n++; if (n >= w) cut = 1; if (l ~ /^(Package|Version|Architecture|Source):/) print l } END { if (p) print ""; to(nf); if (cut) print "#cut" }')
  echo "#file $f"; n=1
  case "$k" in
    *"#cut"*) with_timeout 20 /usr/lib/apt/apt-helper cat-file "$f" | awk 'BEGIN{RS="";FS="\n"} $1 ~ /^Package: (linux-image-.+|linux-(generic|virtual|kvm|aws))$/ {for(i=1;i<=NF;i++) if ($i ~ /^(Package|Version|Architecture|Source):/) print $i; print ""}' ;;
    ?*) printf '%s\n\n' "$k" ;;
  esac
done
[ "$n" = 1 ] || exit 4
}
run_command 17 command_17 apt.kernel_lists &
command_18() {
command -v apt-get >/dev/null 2>&1 || exit 127
for f in /var/lib/apt/lists/*security*_Packages; do [ -f "$f" ] && exit 3; done
if [ -x /usr/lib/apt/apt-helper ]; then for f in /var/lib/apt/lists/*security*_Packages.*; do [ -f "$f" ] && exit 3; done; fi
with_timeout 30 apt-get -s -q -o Debug::NoLocking=true dist-upgrade
}
run_command 18 command_18 apt.simulate &
command_19() {
command -v dnf >/dev/null 2>&1 || exit 127
( . /etc/os-release 2>/dev/null || . /usr/lib/os-release 2>/dev/null
  case " $ID $ID_LIKE " in *" rhel "*|*" fedora "*|*" centos "*) exit 0;; esac; exit 1 ) || exit 127
echo '#security'; with_timeout 90 dnf --cacheonly updateinfo list --security 2>&1; echo "#rc $?"
echo '#kernel'; with_timeout 90 dnf -q --cacheonly list --upgrades 'kernel*' 2>&1; echo "#rc $?"
}
run_command 19 command_19 dnf.updates &
command_20() {
n=0
while IFS=: read -r _u _p _i _g _c h _s; do
  n=$((n+1)); [ $n -gt 5000 ] && break
  case $h in /|/home/*|/root|/dev/*|/proc/*|/sys/*|"") continue;; esac
  for f in "$h/.ssh/authorized_keys" "$h/.ssh/authorized_keys2"; do
    [ -f "$f" ] && [ -r "$f" ] || continue
    printf '==> %s <==\n' "$f"
    c=0
    while IFS= read -r l || [ -n "$l" ]; do
      c=$((c+1)); [ $c -gt 2000 ] && break
      printf '%s\n' "$l"
    done <"$f"
  done
done </etc/passwd
:
}
run_command 20 command_20 keys.extra_authorized_keys &
follow_kind_0() { case $1 in '#include'|@include) return 1;; '#includedir'|@includedir) return 2;; esac; return 0; }
follow_skip_0() { case $1 in *.*|*'~') return 0;; esac; return 1; }
follow_includes 0 128 512 '^[[:space:]]*(#include|@include|#includedir|@includedir)[[:space:]]' /etc/sudoers &
find /root /home /etc /opt /srv -xdev -maxdepth 4 -type f -size -65k -exec grep -lZF -e 'PRIVATE KEY-----' {} + </dev/null >"$SCRATCH/x0" 2>/dev/null &
read_files /etc/os-release /usr/lib/os-release /etc/hostname /proc/uptime /proc/sys/kernel/osrelease /proc/sys/kernel/hostname /etc/machine-id /var/lib/cloud/data/instance-id /proc/net/fib_trie /proc/net/if_inet6 /etc/fail2ban/action.d/*.conf /etc/fail2ban/action.d/*.local /etc/ufw/ufw.conf /etc/fail2ban/*.conf /etc/fail2ban/*.local /etc/fail2ban/jail.d/*.conf /etc/fail2ban/jail.d/*.local /etc/fail2ban/filter.d/sshd.conf /etc/fail2ban/filter.d/sshd.local /etc/fail2ban/filter.d/common.conf /etc/fail2ban/filter.d/common.local /etc/denyhosts.conf /etc/sshguard/sshguard.conf /etc/sshguard.conf /etc/crowdsec/acquis.yaml /etc/crowdsec/acquis.d/*.yaml /etc/crowdsec/acquis.d/*.yml /etc/ssh/sshd_config /etc/ssh/*.conf /etc/crypto-policies/back-ends/opensshserver.config /etc/default/ssh /etc/sysconfig/sshd /etc/passwd /etc/group /root/.ssh/authorized_keys /root/.ssh/authorized_keys2 /run/systemd/system/ssh.socket /run/systemd/system/sshd.socket /run/systemd/generator/ssh.socket /run/systemd/generator/sshd.socket /run/systemd/system/ssh.socket.d/*.conf /run/systemd/system/sshd.socket.d/*.conf /run/systemd/generator/ssh.socket.d/*.conf /run/systemd/generator/sshd.socket.d/*.conf /etc/nsswitch.conf /etc/shadow /etc/gshadow /etc/login.defs /usr/etc/login.defs /var/log/lastlog /var/lib/lastlog/lastlog2.db /var/log/wtmp /var/lib/wtmpdb/wtmp.db /etc/cloud/cloud.cfg /etc/cloud/cloud.cfg.d/*.cfg /etc/rsyslog.conf /etc/rsyslog.d/* /etc/syslog-ng/conf.d/* /etc/systemd/journald.conf /run/systemd/journald.conf /usr/local/lib/systemd/journald.conf /usr/lib/systemd/journald.conf /etc/systemd/journald.conf.d/*.conf /run/systemd/journald.conf.d/*.conf /usr/local/lib/systemd/journald.conf.d/*.conf /usr/lib/systemd/journald.conf.d/*.conf /etc/systemd/journal-upload.conf /usr/lib/systemd/journal-upload.conf /etc/systemd/journal-upload.conf.d/*.conf /usr/lib/systemd/journal-upload.conf.d/*.conf /etc/inetd.conf /etc/xinetd.conf /etc/xinetd.d/* /etc/bind/*/*.conf /etc/named.conf /etc/named/*.conf /etc/named.rfc1912.zones /etc/crypto-policies/back-ends/bind.config /etc/unbound/unbound.conf /etc/unbound/unbound.conf.d/*.conf /etc/unbound/conf.d/*.conf /etc/unbound/local.d/*.conf /etc/dnsmasq.conf /etc/dnsmasq.d/* /etc/default/dnsmasq /usr/share/dnsmasq/init-system-common /etc/powerdns/recursor.conf /etc/pdns-recursor/recursor.conf /etc/powerdns/recursor.yml /etc/pdns-recursor/recursor.yml /etc/powerdns/recursor.d/*.conf /etc/pdns-recursor/recursor.d/*.conf /etc/systemd/resolved.conf /etc/systemd/resolved.conf.d/*.conf /usr/lib/systemd/resolved.conf.d/*.conf /run/systemd/resolved.conf.d/*.conf /etc/postfix/main.cf /etc/postfix/master.cf /etc/exim4/update-exim4.conf.conf /etc/exim4/exim4.conf /etc/exim/exim.conf /etc/exim.conf /etc/exim4/exim4.conf.localmacros /etc/mail/sendmail.cf /etc/mail/sendmail.mc /etc/smtpd.conf /etc/smtpd/smtpd.conf /etc/opensmtpd/smtpd.conf /etc/dovecot/dovecot.conf /etc/dovecot/conf.d/*.conf /etc/dovecot/local.conf /usr/share/dovecot/protocols.d/*.protocol /etc/ntpsec/ntp.conf /etc/ntp.conf /etc/ntp/ntp.conf /etc/ntpsec/ntp.d/*.conf /etc/chrony/chrony.conf /etc/chrony.conf /etc/chrony/conf.d/*.conf /etc/chrony.d/*.conf /etc/openntpd/ntpd.conf /etc/ntpd.conf /etc/vsftpd.conf /etc/vsftpd/vsftpd.conf /etc/proftpd/proftpd.conf /etc/proftpd/tls.conf /etc/proftpd.conf /etc/pure-ftpd/conf/TLS /etc/redis.conf /etc/memcached.conf /etc/sysconfig/memcached /etc/mongod.conf /etc/elasticsearch/elasticsearch.yml /etc/rstudio/rserver.conf /etc/shiny-server/shiny-server.conf /etc/tigervnc/vncserver-config-mandatory /etc/tigervnc/vncserver-config-defaults /etc/nginx/nginx.conf /etc/nginx/conf.d/*.conf /etc/nginx/sites-enabled/* /etc/apache2/apache2.conf /etc/apache2/ports.conf /etc/apache2/sites-enabled/* /etc/apache2/mods-enabled/ssl.conf /etc/httpd/conf/httpd.conf /etc/httpd/conf.d/*.conf /root/.jupyter/jupyter_server_config.py /root/.jupyter/jupyter_server_config.json /root/.jupyter/jupyter_notebook_config.py /root/.jupyter/jupyter_notebook_config.json /root/.jupyter/jupyter_lab_config.py /root/.jupyter/jupyter_lab_config.json /home/*/.jupyter/jupyter_server_config.py /home/*/.jupyter/jupyter_server_config.json /home/*/.jupyter/jupyter_notebook_config.py /home/*/.jupyter/jupyter_notebook_config.json /home/*/.jupyter/jupyter_lab_config.py /home/*/.jupyter/jupyter_lab_config.json /etc/jupyter/jupyter_server_config.py /etc/jupyter/jupyter_server_config.json /etc/jupyter/jupyter_notebook_config.py /etc/jupyter/jupyter_notebook_config.json /etc/jupyter/jupyter_lab_config.py /etc/jupyter/jupyter_lab_config.json /usr/local/etc/jupyter/jupyter_server_config.py /usr/local/etc/jupyter/jupyter_server_config.json /usr/local/etc/jupyter/jupyter_notebook_config.py /usr/local/etc/jupyter/jupyter_notebook_config.json /usr/local/etc/jupyter/jupyter_lab_config.py /usr/local/etc/jupyter/jupyter_lab_config.json /etc/jupyterhub/jupyterhub_config.py /etc/default/ufw /etc/ufw/user.rules /etc/ufw/user6.rules /etc/ufw/before.rules /etc/ufw/before6.rules /etc/ufw/after.rules /etc/ufw/after6.rules /etc/firewalld/firewalld.conf /etc/firewalld/zones/*.xml /etc/firewalld/services/*.xml /usr/lib/firewalld/zones/*.xml /etc/nftables.conf /etc/sysconfig/nftables.conf /etc/nftables/*.nft /etc/nftables.d/*.nft /etc/nftables.d/*.conf /etc/iptables/rules.v4 /etc/iptables/rules.v6 /etc/sysconfig/iptables /etc/sysconfig/ip6tables /etc/apt/apt.conf.d/* /etc/apt/apt.conf /var/log/unattended-upgrades/unattended-upgrades.log /etc/dnf/automatic.conf /etc/dnf/dnf5-plugins/automatic.conf /usr/share/dnf5/dnf5-plugins/automatic.conf /etc/yum/yum-cron.conf /run/reboot-required /var/run/reboot-required /run/reboot-required.pkgs /var/run/reboot-required.pkgs /etc/dnf/plugins/needs-restarting.d/*.conf /etc/aliases /root/.forward /home/*/.forward /etc/apt/sources.list /etc/apt/sources.list.d/* /var/lib/dpkg/arch /home/*/.ssh/authorized_keys /home/*/.ssh/authorized_keys2 /run/cloud-init/instance-data.json /root/.config/openstack/clouds.yaml /home/*/.config/openstack/clouds.yaml /root/.config/openstack/secure.yaml /home/*/.config/openstack/secure.yaml /root/clouds.yaml /home/*/clouds.yaml /etc/openstack/clouds.yaml /etc/openstack/secure.yaml /root/.aws/credentials /home/*/.aws/credentials /root/.git-credentials /home/*/.git-credentials /root/.netrc /home/*/.netrc /root/.docker/config.json /home/*/.docker/config.json /etc/ssh/ssh_host_*_key.pub /root/.ssh/*.pub /home/*/.ssh/*.pub --dedup /etc/ssh/sshd_config.d/*.conf /etc/ssh/sshd_config.d/* /etc/ssh/sshd_config.d/*/* /etc/ssh/*/*.conf /etc/ssh/*/*/*.conf /etc/ssh/authorized_keys/root /etc/systemd/system/ssh.socket /etc/systemd/system/sshd.socket /usr/lib/systemd/system/ssh.socket /usr/lib/systemd/system/sshd.socket /lib/systemd/system/ssh.socket /lib/systemd/system/sshd.socket /etc/systemd/system/ssh.socket.d/*.conf /etc/systemd/system/sshd.socket.d/*.conf /usr/lib/systemd/system/ssh.socket.d/*.conf /usr/lib/systemd/system/sshd.socket.d/*.conf /lib/systemd/system/ssh.socket.d/*.conf /lib/systemd/system/sshd.socket.d/*.conf /etc/syslog-ng/syslog-ng.conf /etc/syslog-ng/*.conf /etc/bind/named.conf* /etc/bind/*.conf /etc/redis/redis.conf /etc/redis/*.conf /etc/systemd/system/*.socket /lib/systemd/system/*.socket /usr/lib/systemd/system/*.socket /etc/systemd/system/*.socket.d/*.conf /lib/systemd/system/*.socket.d/*.conf /usr/lib/systemd/system/*.socket.d/*.conf /etc/ssh/authorized_keys/* /etc/ssh/authorized_keys.d/* /etc/ssh/keys/* /root/*-openrc.sh /home/*/*-openrc.sh /root/*openrc*.sh /home/*/*openrc*.sh
grep_files '^((Package|Status|Version|Architecture|Source):|[[:space:]]*$)' /var/lib/dpkg/status
grep_files '^(Origin|Label|Suite|Codename|Version|Date|Valid-Until):|^MD5Sum:|^SHA1:|^SHA256:|^SHA512:|^-----BEGIN PGP SIGNATURE' /var/lib/apt/lists/*_InRelease /var/lib/apt/lists/*_Release
grep_files '^[[:space:]]*$|^(Package|Version|Architecture|Source):' /var/lib/apt/lists/*security*_Packages
part_done files
printf '\n%s C %s\n' "$BOUNDARY" __stat__; stat --printf "$STAT_FORMAT" -- /usr/sbin/sshd /usr/bin/sshd /sbin/sshd /usr/lib/openssh/sshd-session /usr/libexec/openssh/sshd-session /usr/lib/ssh/sshd-session /usr/libexec/sshd-session /lib/*/libwrap.so.0 /usr/lib/*/libwrap.so.0 /lib64/libwrap.so.0 /usr/lib64/libwrap.so.0 /usr/lib/libwrap.so.0 /lib/systemd/system/ssh.service /usr/lib/systemd/system/ssh.service /lib/systemd/system/sshd.service /usr/lib/systemd/system/sshd.service /etc/systemd/system/sshd.service /etc/systemd/system/ssh.service /usr/sbin/rsyslogd /sbin/rsyslogd /usr/sbin/syslog-ng /sbin/syslog-ng /usr/sbin/syslogd /sbin/syslogd /usr/sbin/metalog /var/log/auth.log /var/log/secure /var/log/messages /var/log/syslog /var/log/sshd.log /usr/bin/fail2ban-server /usr/bin/fail2ban-client /usr/sbin/sshguard /usr/bin/sshguard /usr/bin/crowdsec /usr/sbin/denyhosts /usr/bin/denyhosts /usr/local/bin/denyhosts.py /usr/bin/cs-firewall-bouncer /usr/bin/crowdsec-firewall-bouncer /usr/local/sbin/iptables /usr/local/sbin/ip6tables /usr/local/sbin/ipset /usr/local/sbin/nft /usr/local/sbin/firewall-cmd /usr/local/sbin/ufw /usr/local/sbin/shorewall /usr/local/sbin/shorewall6 /usr/local/sbin/ip /usr/local/sbin/route /usr/local/sbin/pfctl /usr/local/sbin/ipfw /usr/local/sbin/sh /usr/local/bin/iptables /usr/local/bin/ip6tables /usr/local/bin/ipset /usr/local/bin/nft /usr/local/bin/firewall-cmd /usr/local/bin/ufw /usr/local/bin/shorewall /usr/local/bin/shorewall6 /usr/local/bin/ip /usr/local/bin/route /usr/local/bin/pfctl /usr/local/bin/ipfw /usr/local/bin/sh /usr/sbin/iptables /usr/sbin/ip6tables /usr/sbin/ipset /usr/sbin/nft /usr/sbin/firewall-cmd /usr/sbin/ufw /usr/sbin/shorewall /usr/sbin/shorewall6 /usr/sbin/ip /usr/sbin/route /usr/sbin/pfctl /usr/sbin/ipfw /usr/sbin/sh /usr/bin/iptables /usr/bin/ip6tables /usr/bin/ipset /usr/bin/nft /usr/bin/firewall-cmd /usr/bin/ufw /usr/bin/shorewall /usr/bin/shorewall6 /usr/bin/ip /usr/bin/route /usr/bin/pfctl /usr/bin/ipfw /usr/bin/sh /sbin/iptables /sbin/ip6tables /sbin/ipset /sbin/nft /sbin/firewall-cmd /sbin/ufw /sbin/shorewall /sbin/shorewall6 /sbin/ip /sbin/route /sbin/pfctl /sbin/ipfw /sbin/sh /bin/iptables /bin/ip6tables /bin/ipset /bin/nft /bin/firewall-cmd /bin/ufw /bin/shorewall /bin/shorewall6 /bin/ip /bin/route /bin/pfctl /bin/ipfw /bin/sh /etc/crowdsec/collections/* /etc/crowdsec/scenarios/* /etc/crowdsec/bouncers/* /usr/lib/python3/dist-packages/systemd/journal.py /usr/lib64/python3*/site-packages/systemd/journal.py /usr/lib/python3*/site-packages/systemd/journal.py /usr/local/sbin/sshd /etc/ssh/* /etc/ssh/*/* /etc/ssh/*/*/* /usr/lib/systemd/system-generators/sshd-socket-generator /lib/systemd/system-generators/sshd-socket-generator /etc/systemd/system/sockets.target.wants/ssh.socket /etc/systemd/system/ssh.service.requires/ssh.socket /etc/systemd/system/sockets.target.wants/sshd.socket /etc/systemd/system/ssh.socket /etc/systemd/system/sshd.socket /etc/sudoers /etc/sudoers.d /etc/sudoers.d/* /usr/bin/sudo /bin/sudo /usr/local/bin/sudo /usr/sbin/sudo /root /home/* /root/.ssh/authorized_keys /root/.ssh/authorized_keys2 /home/*/.ssh/authorized_keys /home/*/.ssh/authorized_keys2 /var/*/.ssh/authorized_keys /var/*/.ssh/authorized_keys2 /var/lib/*/.ssh/authorized_keys /var/lib/*/.ssh/authorized_keys2 /var/spool/*/.ssh/authorized_keys /var/spool/*/.ssh/authorized_keys2 /srv/*/.ssh/authorized_keys /srv/*/.ssh/authorized_keys2 /opt/*/.ssh/authorized_keys /opt/*/.ssh/authorized_keys2 /etc/passwd /etc/shadow /etc/group /etc/gshadow /var/log/audit/audit.log /var/log/kern.log /var/log/btmp /var/log/journal /var/log/audit /sbin/auditd /usr/sbin/auditd /etc/systemd/system /etc/systemd/system/* /etc/systemd/system/*.wants/* /etc/systemd/system/*.requires/* /etc/rc[2345].d/S* /lib/systemd/systemd /usr/lib/systemd/systemd /usr/sbin/named /usr/sbin/unbound /usr/sbin/dnsmasq /usr/sbin/pdns_recursor /usr/lib/systemd/systemd-resolved /lib/systemd/systemd-resolved /usr/sbin/postfix /usr/sbin/exim4 /usr/sbin/exim /usr/sbin/sendmail.sendmail /usr/lib/sm.bin/sendmail /usr/libexec/sendmail/sendmail /usr/sbin/smtpd /usr/sbin/dovecot /usr/lib/dovecot/imap /usr/lib/dovecot/pop3 /usr/lib/dovecot/submission /usr/lib/dovecot/managesieve /usr/libexec/dovecot/imap /usr/libexec/dovecot/pop3 /usr/libexec/dovecot/submission /usr/libexec/dovecot/managesieve /lib/systemd/systemd-timesyncd /usr/lib/systemd/systemd-timesyncd /usr/sbin/ntpd /usr/sbin/chronyd /usr/sbin/openntpd /usr/sbin/firewalld /var/lib/apt/periodic/* /lib/systemd/system/apt-daily*.timer /usr/lib/systemd/system/apt-daily*.timer /lib/systemd/system/dnf*-automatic*.timer /usr/lib/systemd/system/dnf*-automatic*.timer /lib/systemd/system/yum-cron.service /usr/lib/systemd/system/yum-cron.service /etc/cron.daily/apt-compat /etc/cron.daily/0yum-daily.cron /usr/sbin/cron /usr/sbin/crond /boot/vmlinuz-* /sys/kernel/livepatch/* /run/reboot-required /var/run/reboot-required /var/lib/rpm/rpmdb.sqlite /var/lib/rpm/Packages /var/lib/rpm/Packages.db /usr/lib/sysimage/rpm/rpmdb.sqlite /usr/lib/sysimage/rpm/Packages.db /usr/lib/sysimage/rpm/Packages /var/lib/apt/lists /var/lib/apt/lists/* /var/lib/apt/periodic/update-success-stamp /var/lib/apt/periodic/update-stamp /usr/sbin/sendmail /usr/lib/sendmail /etc/apt/sources.list.d/* /usr/share/keyrings/* /etc/apt/keyrings/* /etc/apt/trusted.gpg.d/* /var/lib/cloud/instance /var/lib/cloud/instance/boot-finished /var/lib/cloud/data/instance-id /var/lib/cloud/instances/* /var/lib/cloud/instances/*/sem/* /var/lib/cloud/instances/*/boot-finished /run/cloud-init/instance-data.json /etc/ssh/ssh_host_* /etc/ssl/private/* /etc/pki/tls/private/* /root/.ssh/* /home/*/.ssh/* 2>/dev/null; printf '\n%s E 0\n' "$BOUNDARY"
part_done stats
wait
cat "$SCRATCH/o0" "$SCRATCH/o1" "$SCRATCH/o2" "$SCRATCH/o3" "$SCRATCH/o4" "$SCRATCH/o5" "$SCRATCH/o6" "$SCRATCH/o7" "$SCRATCH/o8" "$SCRATCH/o9" "$SCRATCH/o10" "$SCRATCH/o11" "$SCRATCH/o12" "$SCRATCH/o13" "$SCRATCH/o14" "$SCRATCH/o15" "$SCRATCH/o16" "$SCRATCH/o17" "$SCRATCH/o18" "$SCRATCH/o19" "$SCRATCH/o20"
part_done commands
read_user_files
part_done user_files
read_search_hits 0 keys.private
read_search_hits f0 sudoers.includes
part_done searches
