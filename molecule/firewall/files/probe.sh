#!/bin/bash
# TEST SCAFFOLDING (molecule/firewall): probe.sh ADDR:PORT... -> one line per target:
#   ADDR:PORT open <last line of the HTTP answer> | refused | unreachable | timeout | error <message>
# IPv6: [ADDR%IFACE]:PORT. Bash and coreutils' timeout only, so it runs in a tiny image imported
# from the host's binaries; each connection gets at most 5 s.
for target in "$@"; do
  port=${target##*:}
  addr=${target%:*}
  addr=${addr#[}
  addr=${addr%]}
  out=$(timeout 5 bash -c '
    exec 3<>"/dev/tcp/$0/$1" || exit 1
    printf "GET / HTTP/1.0\r\nHost: probe\r\n\r\n" >&3
    last=
    while IFS= read -r line <&3; do last=$line; done
    echo "$last"' "$addr" "$port" 2>&1)
  rc=$?
  if [ $rc -eq 124 ]; then result=timeout
  elif [ $rc -eq 0 ]; then result="open ${out%$'\r'}"
  elif [[ $out == *"Connection refused"* ]]; then result=refused
  elif [[ $out == *"unreachable"* ]]; then result=unreachable
  else result="error ${out//$'\n'/ }"
  fi
  echo "$target $result"
done
