# shellcheck shell=bash
# shellcheck disable=SC2034 # globals are read by the scenarios that source this
# lab.sh - the NAT lab: an emulated internet with NAT routers, built from
# network namespaces, veth pairs, a bridge per LAN and nftables.
# Sourced by tests/e2e/scenario_*.sh, scripts/demo.sh and scripts/lab.sh.
# Topology, addresses and the nft rules: docs/lab.md.
#
#   rdv 198.51.100.100 --- r1 ==== r2 --- pub host 203.0.113.134
#                          |        |
#               NAT A 198.51.100.6  NAT B 203.0.113.6
#                          |        |
#                 LAN 10.0.1.0/24   LAN 10.0.2.0/24
#
# Use:
#   source "$HP_SOURCE_DIR/tests/e2e/lib/lab.sh"
#   lab_create [--rdv-link 40/30]     # root check, core routers, rdv host, trap
#   lab_add_nat nata changing         # preserving | changing | random
#     [r1|r2] [--wan 10/2/1] [--filter drop|reject]
#   lab_add_worker_host a nata        # host 10.0.N.x behind that NAT
#   lab_start_rendezvous
#   lab_run_worker a a room1          # process name, host, room [VAR=VAL ...]
#   lab_wait_exit a 30; echo "${LAB_RC[a]}"
#
# Every process runs inside a namespace of this lab; lab_cleanup (on EXIT,
# INT, TERM) kills them all and deletes every namespace, also on failure.
# Names carry the shell's PID ("hp$$-") so several labs can run at once.

LAB_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_SOURCE_DIR=${HP_SOURCE_DIR:-$(cd "$LAB_LIB_DIR/../../.." && pwd)}
LAB_ID="hp$$"
LAB_DIR=""
LAB_NS=()
LAB_T0=$(date +%s.%N)
LAB_RDV_IP=198.51.100.100
LAB_RDV_PORT=8080
LAB_RDV_URL="http://$LAB_RDV_IP:$LAB_RDV_PORT"
LAB_PY=/usr/bin/python3
# One JSON-log query tool for the lab and the loopback tests.
LAB_JSONLOG="$LAB_LIB_DIR/../../lib/jsonlog.py"
LAB_FAILED=0
declare -A LAB_NSNAME=()   # short name -> namespace
declare -A LAB_IP=()       # host / NAT name -> its address (NAT: WAN address)
declare -A LAB_NAT_TYPE=() # NAT name -> preserving | changing | random
declare -A LAB_NAT_IDX=()  # NAT name -> N (its LAN is 10.0.N.0/24)
declare -A LAB_NAT_FILTER=() # NAT name -> drop | reject (unsolicited inbound)
declare -A LAB_LINK=()     # node name -> link spec of its emulated uplink ("" = veth)
declare -A LAB_NAT_HOSTS=() # NAT name -> number of LAN hosts so far
declare -A LAB_HOST_NAT=() # host name -> NAT name ("" for a public host)
declare -A LAB_PID=()      # process name -> pid
declare -A LAB_PROC_T0=()  # process name -> start time (s since epoch)
declare -A LAB_RC=()       # process name -> exit code ("timeout" if killed)
declare -A LAB_ELAPSED=()  # process name -> seconds it ran (text)
LAB_NATS_R1=0
LAB_NATS_R2=0
LAB_NATS=0
LAB_PUBS=0
LAB_DESC=()                # lines of the topology, for lab_describe

_lab_now() { date +%s.%N; }
# Seconds since T (a date +%s.%N value), two decimals.
_lab_since() { awk -v t="$1" -v now="$(date +%s.%N)" 'BEGIN { printf "%.2f", now - t }'; }

lab_log() {
  [[ "${LAB_QUIET:-0}" == 1 ]] && return 0
  printf '[lab %6.2fs] %s\n' "$(_lab_since "$LAB_T0")" "$*" >&2
}

# Stop the test now, loudly. The EXIT trap prints the logs and cleans up.
lab_fail() {
  LAB_FAILED=1
  echo "" >&2
  echo "FAIL: $*" >&2
  exit 1
}

lab_ns() { echo "${LAB_NSNAME[$1]:?"lab: unknown lab node $1"}"; }

# Run a command inside a lab node's namespace (foreground).
lab_exec() {
  local node=$1
  shift
  ip netns exec "$(lab_ns "$node")" "$@"
}

lab_require_root() {
  if [[ $(id -u) -ne 0 ]]; then
    echo "FAIL: the NAT lab needs root (network namespaces, nftables); this is not a skip." >&2
    exit 1
  fi
  local tool
  for tool in ip nft ss curl awk "$LAB_PY"; do
    command -v "$tool" >/dev/null 2>&1 ||
      { echo "FAIL: '$tool' is not installed (run scripts/deps.sh)" >&2; exit 1; }
  done
}

lab_require_binaries() {
  local b
  [[ -n "${HP_BUILD_DIR:-}" ]] || lab_fail "HP_BUILD_DIR is not set (the build dir with holepunch and holepunch-rendezvous)"
  for b in holepunch holepunch-rendezvous; do
    [[ -x "$HP_BUILD_DIR/$b" ]] || lab_fail "binary $HP_BUILD_DIR/$b is missing; build first (scripts/build.sh)"
  done
}

_lab_add_ns() {
  local short=$1 ns="$LAB_ID-$1"
  ip netns add "$ns" || lab_fail "'ip netns add $ns' failed: network namespaces unavailable?"
  LAB_NS+=("$ns")
  LAB_NSNAME[$short]=$ns
  ip -n "$ns" link set lo up || lab_fail "cannot bring up lo in $ns"
  # Quiet namespaces: no IPv6 (no DAD, no router solicitations), no rp_filter.
  ip netns exec "$ns" sh -c '
    sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    sysctl -qw net.ipv4.ip_forward=0' >/dev/null 2>&1 || true
  if ((${LAB_V6:-0})); then _lab_v6_on "$short"; fi
}

# _lab_link NODE1 IF1 ADDR1/LEN NODE2 IF2 ADDR2/LEN: a veth pair between
# two namespaces (created in place: no name ever appears in the root ns).
_lab_link() {
  local n1 n2
  n1=$(lab_ns "$1") n2=$(lab_ns "$4")
  ip -n "$n1" link add "$2" type veth peer name "$5" netns "$n2" ||
    lab_fail "cannot create veth $1:$2 <-> $4:$5"
  [[ -n "$3" ]] && ip -n "$n1" addr add "$3" dev "$2"
  [[ -n "$6" ]] && ip -n "$n2" addr add "$6" dev "$5"
  ip -n "$n1" link set "$2" up
  ip -n "$n2" link set "$5" up
}

# _lab_parse_link SPEC: "DELAY[/JITTER[/LOSS]]" (ms, ms, %) -> the linkemu
# arguments on stdout; fails on anything else.
_lab_parse_link() {
  local spec=$1 d j l
  [[ $spec =~ ^([0-9]+(\.[0-9]+)?)(/([0-9]+(\.[0-9]+)?))?(/([0-9]+(\.[0-9]+)?))?$ ]] ||
    lab_fail "bad link spec '$spec': want DELAY_MS[/JITTER_MS[/LOSS_PCT]], e.g. 20 or 40/30 or 5/0/2"
  d=${BASH_REMATCH[1]} j=${BASH_REMATCH[4]:-0} l=${BASH_REMATCH[7]:-0}
  echo "--delay $d --jitter $j --loss $l"
}

# _lab_link_emulated NODE1 IF1 ADDR1/LEN NODE2 IF2 ADDR2/LEN SPEC: like
# _lab_link, but a point-to-point link through the link emulator
# (tests/e2e/lib/linkemu.c, build/linkemu): two TUN devices, SPEC's one-way
# delay, jitter and loss in each direction, packets kept in order. linkemu
# runs as lab process "link-NODE1-NODE2" (in NODE1's namespace) and stops by
# itself after LAB_LINK_DURATION s (default 900); its TUN devices vanish
# with it.
_lab_link_emulated() {
  local proc="link-$1-$4" args n
  [[ -x "${HP_BUILD_DIR:-}/linkemu" ]] ||
    lab_fail "link emulator ${HP_BUILD_DIR:-\$HP_BUILD_DIR}/linkemu is missing; build first (scripts/build.sh)"
  args=$(_lab_parse_link "$7")
  # shellcheck disable=SC2086 # args is a list of words
  lab_run "$proc" "$1" "$HP_BUILD_DIR/linkemu" --a ".:$2" --b "$(lab_ns "$4"):$5" $args \
    --duration "${LAB_LINK_DURATION:-900}"
  n=50
  until grep -q '^ready' "$LAB_DIR/$proc.out" 2>/dev/null; do
    if ((n-- <= 0)) || ! _lab_alive "${LAB_PID[$proc]}"; then
      lab_fail "link emulator $1:$2 <-> $4:$5 did not start: $(cat "$LAB_DIR/$proc.err" 2>/dev/null)"
    fi
    sleep 0.1
  done
  [[ -n "$3" ]] && lab_exec "$1" ip addr add "$3" dev "$2"
  [[ -n "$6" ]] && lab_exec "$4" ip addr add "$6" dev "$5"
  lab_exec "$1" ip link set "$2" up
  lab_exec "$4" ip link set "$5" up
}

# _lab_uplink NODE1 IF1 ADDR1 NODE2 IF2 ADDR2 SPEC: a veth pair when SPEC is
# empty, an emulated link otherwise.
_lab_uplink() {
  if [[ -n "${7:-}" ]]; then
    _lab_link_emulated "$@"
  else
    _lab_link "$1" "$2" "$3" "$4" "$5" "$6"
  fi
}

_lab_forwarding() { ip netns exec "$(lab_ns "$1")" sysctl -qw net.ipv4.ip_forward=1 >/dev/null; }

# lab_create: root check, temp dir, trap, the internet core and the rendezvous host.
#   r1 <-> r2          198.51.100.252/30 (r1 .253, r2 .254)
#   r1 <-> rdv         198.51.100.96/29  (r1 .97, rdv .100)
#   r1 <-> NAT k       198.51.100.4k/30  (r1 .4k+1, NAT .4k+2)
#   r2 <-> NAT k       203.0.113.4k/30   (r2 .4k+1, NAT .4k+2)
#   r2 <-> public k    203.0.113.(128+4k)/30 (r2 .+1, host .+2)
#
# --rdv-link SPEC (default $LAB_RDV_LINK, else none): the r1 <-> rdv link goes
# through the link emulator with SPEC = DELAY_MS[/JITTER_MS[/LOSS_PCT]]
# (one way, each direction), e.g. 40/30: 40-70 ms each way.
# shellcheck disable=SC2120 # arguments are optional
lab_create() {
  local rdv_link=${LAB_RDV_LINK:-}
  while (($#)); do
    case $1 in
      --rdv-link) rdv_link=${2:?lab_create: --rdv-link needs a spec}; shift 2 ;;
      *) echo "FAIL: lab_create: unknown option '$1'" >&2; exit 1 ;;
    esac
  done
  lab_require_root
  LAB_DIR=$(mktemp -d "/tmp/hp-lab.$$.XXXXXX") || lab_fail "mktemp failed"
  trap lab_cleanup EXIT
  trap 'lab_log "interrupted"; exit 130' INT
  trap 'lab_log "terminated"; exit 143' TERM
  lab_log "lab $LAB_ID, logs in $LAB_DIR"

  _lab_add_ns r1
  _lab_add_ns r2
  _lab_add_ns rdv
  _lab_forwarding r1
  _lab_forwarding r2
  _lab_link r1 r2 198.51.100.253/30 r2 r1 198.51.100.254/30
  _lab_uplink r1 rdv 198.51.100.97/29 rdv eth0 $LAB_RDV_IP/29 "$rdv_link"
  LAB_LINK[rdv]=$rdv_link
  lab_exec rdv ip route add default via 198.51.100.97
  lab_exec r1 ip route add 203.0.113.0/24 via 198.51.100.254
  lab_exec r2 ip route add 198.51.100.0/24 via 198.51.100.253
  # nftables must work here; check once, loudly.
  lab_exec r1 nft list tables >/dev/null 2>&1 || lab_fail "nft does not work in a network namespace"
  LAB_DESC+=("rendezvous host  rdv   $LAB_RDV_IP (behind core router r1)${rdv_link:+, emulated link $rdv_link (ms/ms/%)}")
  LAB_DESC+=("core routers     r1 198.51.100.253 <-> r2 198.51.100.254")
}

# The nft ruleset of a NAT router. $2 = preserving | changing | random,
# $3 = drop | reject (what unsolicited inbound gets).
_lab_nat_rules() {
  local mode=$2 filter=${3:-drop} masq unsolicited
  case $mode in
    preserving) masq="masquerade" ;;
    changing) masq="meta l4proto { tcp, udp } masquerade to :20000-30000
    oifname \"wan\" masquerade" ;;
    random) masq="masquerade random,fully-random" ;;
    *) lab_fail "unknown NAT type '$mode'" ;;
  esac
  case $filter in
    drop) unsolicited='iifname "wan" drop' ;;
    reject) unsolicited='iifname "wan" meta l4proto tcp counter reject with tcp reset
    iifname "wan" drop' ;;
    *) lab_fail "unknown NAT filter '$filter' (drop or reject)" ;;
  esac
  cat <<EOF
table ip hpnat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" $masq
  }
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    ct state invalid counter drop
    iifname "lan" oifname "wan" accept
    iifname "lan" oifname "lan" accept
  }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state established,related accept
    $unsolicited
  }
}
EOF
}

# lab_add_nat NAME TYPE [r1|r2]: a NAT router with a WAN link to a core router
# (default: alternately r1, r2) and a LAN bridge 10.0.N.1/24.
# TYPE: preserving (masquerade), changing (masquerade to :20000-30000),
# random (masquerade random,fully-random: endpoint-dependent, "symmetric").
# Options after TYPE (and the optional side):
#   --wan SPEC     the WAN link goes through the link emulator, SPEC =
#                  DELAY_MS[/JITTER_MS[/LOSS_PCT]] (default $LAB_WAN_LINK)
#   --filter MODE  unsolicited inbound TCP is dropped silently (drop, the
#                  default) or answered with a reset (reject)
lab_add_nat() {
  local name=$1 type=$2 side="" k wan gw ns n link=${LAB_WAN_LINK:-} filter=drop
  shift 2
  if [[ "${1:-}" == r1 || "${1:-}" == r2 ]]; then
    side=$1
    shift
  fi
  while (($#)); do
    case $1 in
      --wan) link=${2:?lab_add_nat: --wan needs a spec}; shift 2 ;;
      --filter) filter=${2:?lab_add_nat: --filter needs drop or reject}; shift 2 ;;
      "") shift ;;
      *) lab_fail "lab_add_nat: unknown option '$1'" ;;
    esac
  done
  case $type in
    port-preserving) type=preserving ;;
    port-changing) type=changing ;;
    port-randomizing | symmetric | fully-random) type=random ;;
  esac
  LAB_NATS=$((LAB_NATS + 1))
  n=$LAB_NATS
  [[ -n "$side" ]] || { ((n % 2 == 1)) && side=r1 || side=r2; }
  if [[ $side == r1 ]]; then
    LAB_NATS_R1=$((LAB_NATS_R1 + 1)) k=$LAB_NATS_R1
    wan="198.51.100.$((4 * k + 2))" gw="198.51.100.$((4 * k + 1))"
  else
    LAB_NATS_R2=$((LAB_NATS_R2 + 1)) k=$LAB_NATS_R2
    wan="203.0.113.$((4 * k + 2))" gw="203.0.113.$((4 * k + 1))"
  fi
  _lab_add_ns "$name"
  ns=$(lab_ns "$name")
  _lab_forwarding "$name"
  _lab_uplink "$side" "nat$n" "$gw/30" "$name" wan "$wan/30" "$link"
  ip -n "$ns" route add default via "$gw"
  ip -n "$ns" link add lan type bridge || lab_fail "cannot create a bridge in $ns"
  ip -n "$ns" addr add "10.0.$n.1/24" dev lan
  ip -n "$ns" link set lan up
  # LAN-to-LAN traffic is bridged; keep it out of the ip filter hooks.
  ip netns exec "$ns" sysctl -qw net.bridge.bridge-nf-call-iptables=0 >/dev/null 2>&1 || true
  _lab_nat_rules "$name" "$type" "$filter" >"$LAB_DIR/nft-$name.nft"
  ip netns exec "$ns" nft -f "$LAB_DIR/nft-$name.nft" ||
    lab_fail "nft rejected the NAT ruleset of $name (see $LAB_DIR/nft-$name.nft)"
  LAB_IP[$name]=$wan
  LAB_NAT_TYPE[$name]=$type
  LAB_NAT_IDX[$name]=$n
  LAB_NAT_HOSTS[$name]=0
  LAB_NAT_FILTER[$name]=$filter
  LAB_LINK[$name]=$link
  if ((LAB_V6)); then _lab_nat_v6 "$name" "$n" "$side"; fi
  LAB_DESC+=("NAT router       $name  WAN $wan (via $side${link:+, emulated link $link ms/ms/%}), LAN 10.0.$n.0/24, $type, unsolicited inbound: $filter")
}

# lab_quiet_routers: the core routers r1 and r2 send no ICMP Time Exceeded
# (some internet routers do not): a SYN whose TTL runs out there dies
# silently. For the low-TTL first SYN (LOW_TTL_SYN, docs/lab.md), which a
# Time Exceeded quoting it would kill on a Linux sender.
lab_quiet_routers() {
  local r
  for r in r1 r2; do
    lab_exec "$r" nft -f - <<'NFT' || lab_fail "cannot make $r quiet"
table inet hpquiet {
  chain output {
    type filter hook output priority filter; policy accept;
    icmp type time-exceeded counter drop
    icmpv6 type time-exceeded counter drop
  }
}
NFT
  done
  LAB_DESC+=("  core routers r1, r2: no ICMP Time Exceeded (quiet)")
}

# lab_nat_loss NAME PCT: the NAT's forward chain drops PCT % of all packets
# it forwards (both directions), before any other rule.
lab_nat_loss() {
  lab_exec "$1" nft insert rule ip hpnat forward numgen random mod 100 "<" "$2" counter drop ||
    lab_fail "cannot add the loss rule to $1"
  LAB_DESC+=("  loss on $1: $2 % of forwarded packets dropped")
}

# lab_nat_lose_first_syn NAME FROM: NAME's forward chain drops the first pure
# SYN from the NAT FROM's WAN address that it forwards (only one packet; the
# rule re-arms when called again). A SYN that reaches the forward hook has
# matched an existing conntrack entry (else the input chain drops it), so
# this loses exactly the crossing SYN of a simultaneous open, after conntrack
# has moved the entry to SYN_SENT2. A retransmission of the same SYN gets
# through; a SYN with a new ISN on that entry is INVALID for conntrack.
lab_nat_lose_first_syn() {
  local nat=$1 from=$2 h
  for h in $(lab_exec "$nat" nft -a list chain ip hpnat forward | sed -n 's/.*"hp-first-syn" # handle \([0-9]*\)$/\1/p'); do
    lab_exec "$nat" nft delete rule ip hpnat forward handle "$h"
  done
  # 61 bytes: the first SYN (60 bytes with options) fits, the second does not.
  lab_exec "$nat" nft insert rule ip hpnat forward iifname wan ip saddr "${LAB_IP[$from]}" \
    "tcp flags & (syn | ack) == syn" quota until 61 bytes counter drop comment '"hp-first-syn"' ||
    lab_fail "cannot add the first-SYN rule to $nat"
}

# lab_nat_counter NAME WHAT: packets counted by NAME's forward rule matching
# WHAT ("hp-first-syn", "invalid", "numgen").
lab_nat_counter() {
  lab_exec "$1" nft list chain ip hpnat forward | grep -- "$2" | sed -n 's/.*counter packets \([0-9]*\).*/\1/p' | head -n 1
}

# lab_nat_resets NAME: resets NAME sent to unsolicited inbound TCP (filter
# reject; 0 for drop).
lab_nat_resets() {
  local n
  n=$(lab_exec "$1" nft list chain ip hpnat input | sed -n 's/.*counter packets \([0-9]*\).*reject.*/\1/p' | head -n 1)
  echo "${n:-0}"
}

# lab_nat_upnp NAME: run Debian's miniupnpd (nftables backend) on the NAT
# router NAME, serving UPnP-IGD and NAT-PMP on its LAN. Its rules live in
# their own table (inet hpupnp: the chains miniupnpd fills, hooked into
# forward, prerouting and postrouting); the NAT's own forward chain lets
# DNATed connections through ("ct status dnat accept", as routers with
# port forwarding do). miniupnpd refuses to map when its WAN address is
# "reserved", which the lab's documentation ranges are, unless a STUN check
# says the address is public: a minimal UDP STUN responder on the rdv host
# (standin.py stun-udp, port 3478) answers it, and it is right, the WAN
# address is on the emulated internet (the router's own packets are not
# masqueraded, see below). Process "upnp-NAME" (log
# $LAB_DIR/upnp-NAME.err), stopped by the lab's cleanup or after 300 s.
lab_nat_upnp() {
  local nat=$1 conf="$LAB_DIR/miniupnpd-$1.conf" n tries
  command -v miniupnpd >/dev/null || lab_fail "miniupnpd is not installed (miniupnpd-nftables; run scripts/deps.sh)"
  n=${LAB_NAT_IDX[$nat]:?lab: unknown NAT $nat}
  lab_exec "$nat" nft insert rule ip hpnat forward ct status dnat accept ||
    lab_fail "cannot let DNATed connections through $nat"
  # The router's own traffic (miniupnpd's STUN check) leaves un-NATed, as
  # on a real router: masquerading it (fully-random on a random NAT) would
  # make the router look like it sits behind a symmetric NAT itself.
  lab_exec "$nat" nft insert rule ip hpnat postrouting oifname wan ip saddr "${LAB_IP[$nat]}" accept ||
    lab_fail "cannot exempt $nat's own traffic from NAT"
  lab_exec "$nat" nft -f - <<EOF || lab_fail "cannot create the miniupnpd table on $nat"
table inet hpupnp {
  chain forward {
    type filter hook forward priority filter; policy accept;
    jump miniupnpd
  }
  chain miniupnpd {
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    jump prerouting_miniupnpd
  }
  chain prerouting_miniupnpd {
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    jump postrouting_miniupnpd
  }
  chain postrouting_miniupnpd {
  }
}
EOF
  if [[ -z "${LAB_PID[stun-udp]:-}" ]]; then
    lab_run stun-udp rdv "$LAB_PY" "$LAB_LIB_DIR/standin.py" stun-udp --bind "$LAB_RDV_IP" --port 3478 --duration 300
    tries=50
    until [[ -n "$(lab_exec rdv ss -Hlun 'sport = :3478' 2>/dev/null)" ]]; do
      ((tries-- > 0)) || lab_fail "the STUN responder for miniupnpd did not start"
      sleep 0.1
    done
  fi
  cat >"$conf" <<EOF
ext_ifname=wan
listening_ip=lan
http_port=0
enable_natpmp=yes
enable_upnp=yes
secure_mode=yes
system_uptime=yes
notify_interval=60
clean_ruleset_interval=0
uuid=3d3cec3a-8cf0-11e0-98ee-00000000$(printf '%04x' "$n")
ext_perform_stun=yes
ext_stun_host=$LAB_RDV_IP
ext_stun_port=3478
upnp_table_name=hpupnp
upnp_nat_table_name=hpupnp
upnp_forward_chain=miniupnpd
upnp_nat_chain=prerouting_miniupnpd
upnp_nat_postrouting_chain=postrouting_miniupnpd
allow 1024-65535 10.0.$n.0/24 1024-65535
deny 0-65535 0.0.0.0/0 0-65535
EOF
  lab_run "upnp-$nat" "$nat" timeout 300 miniupnpd -f "$conf" -d -P "$LAB_DIR/miniupnpd-$nat.pid"
  # Ready when the STUN check has enabled port forwarding.
  lab_wait_log "upnp-$nat" 'Port forwarding is now enabled' 10 ||
    lab_fail "miniupnpd on $nat did not enable port forwarding (see $LAB_DIR/upnp-$nat.err)"
  LAB_DESC+=("  miniupnpd (UPnP-IGD + NAT-PMP) on $nat")
}

# lab_upnp_rules NAME: miniupnpd's current DNAT rules on NAME, one per line.
lab_upnp_rules() {
  lab_exec "$1" nft list chain inet hpupnp prerouting_miniupnpd | grep -E 'dnat' || true
}

# lab_add_worker_host NAME NAT: a host in that NAT's LAN, 10.0.N.(10+i).
lab_add_worker_host() {
  local name=$1 nat=$2 n i ip
  n=${LAB_NAT_IDX[$nat]:?lab: unknown NAT $nat}
  i=$((LAB_NAT_HOSTS[$nat] + 1))
  LAB_NAT_HOSTS[$nat]=$i
  ip="10.0.$n.$((9 + i))"
  _lab_add_ns "$name"
  _lab_link "$name" eth0 "$ip/24" "$nat" "h$i" ""
  lab_exec "$nat" ip link set "h$i" master lan
  lab_exec "$name" ip route add default via "10.0.$n.1"
  if ((LAB_V6)); then
    _lab_addr6 "$name" eth0 "2001:db8:$n::$((9 + i))/64"
    lab_exec "$name" ip -6 route add default via "2001:db8:$n::1"
    LAB_IP6[$name]="2001:db8:$n::$((9 + i))"
  fi
  LAB_IP[$name]=$ip
  LAB_HOST_NAT[$name]=$nat
  LAB_DESC+=("worker host      $name  $ip${LAB_IP6[$name]:+ [${LAB_IP6[$name]}]} behind $nat")
}

# lab_add_public_host NAME: a host with a public address behind r2, no NAT,
# no firewall.
lab_add_public_host() {
  local name=$1 k ip gw
  LAB_PUBS=$((LAB_PUBS + 1))
  k=$((32 + LAB_PUBS))
  ip="203.0.113.$((4 * k + 2))" gw="203.0.113.$((4 * k + 1))"
  _lab_add_ns "$name"
  _lab_link r2 "pub$LAB_PUBS" "$gw/30" "$name" eth0 "$ip/30"
  lab_exec "$name" ip route add default via "$gw"
  if ((LAB_V6)); then
    _lab_addr6 r2 "pub$LAB_PUBS" "2001:db8:e:$LAB_PUBS::1/64"
    _lab_addr6 "$name" eth0 "2001:db8:e:$LAB_PUBS::2/64"
    lab_exec "$name" ip -6 route add default via "2001:db8:e:$LAB_PUBS::1"
    _lab_route6_other r2 "2001:db8:e:$LAB_PUBS::/64"
    LAB_IP6[$name]="2001:db8:e:$LAB_PUBS::2"
  fi
  LAB_IP[$name]=$ip
  LAB_HOST_NAT[$name]=""
  LAB_DESC+=("public host      $name  $ip${LAB_IP6[$name]:+ [${LAB_IP6[$name]}]} (via r2, no NAT)")
}

lab_describe() {
  local l
  echo "NAT lab $LAB_ID:"
  for l in "${LAB_DESC[@]}"; do echo "  $l"; done
}


# lab_run PROC NODE CMD...: start CMD in NODE's namespace in the background;
# stdout -> $LAB_DIR/PROC.out, stderr -> $LAB_DIR/PROC.err. Sets LAB_PID[PROC]
# (and LAB_LAST_PID). The process is a child of this shell (waitable).
lab_run() {
  local proc=$1 node=$2 ns
  shift 2
  ns=$(lab_ns "$node")
  [[ -z "${LAB_PID[$proc]:-}" ]] || lab_fail "process name '$proc' used twice"
  ip netns exec "$ns" "$@" >"$LAB_DIR/$proc.out" 2>"$LAB_DIR/$proc.err" </dev/null &
  LAB_PID[$proc]=$!
  LAB_LAST_PID=$!
  LAB_PROC_T0[$proc]=$(_lab_now)
}

# lab_run_worker PROC HOST ROOM [VAR=VALUE ...]: the worker binary with the
# lab's defaults, overridden by the given variables. The relay is off by
# default here (RELAY_AFTER=off): the scenarios test punching, and a relayed
# connection would hide its outcome; the relay's scenarios turn it on.
lab_run_worker() {
  local proc=$1 host=$2 room=$3
  shift 3
  lab_run "$proc" "$host" env \
    RENDEZVOUS_SERVICE_URL="$LAB_RDV_URL" \
    INTERNAL_TCP_PORT=8082 PORT=8090 ROOM="$room" WORKER_ID="$proc" \
    P2P_CONNECT_TIMEOUT=10 WS_OPEN_TIMEOUT=5 WS_RECV_TIMEOUT=20 P2P_MSG_TIMEOUT=5 RELAY_AFTER=off \
    LOG_FORMAT=json LOG_LEVEL=debug "$@" "${LAB_WORKER_BIN:-$HP_BUILD_DIR/holepunch}"
  lab_log "started worker $proc on $host (${LAB_IP[$host]}) in room $room"
}

# lab_start_rendezvous [VAR=VALUE ...]: the service on $LAB_RDV_URL; returns
# once GET /healthz answers 200 (bounded).
# shellcheck disable=SC2120 # arguments are optional
lab_start_rendezvous() {
  lab_run rendezvous rdv env PORT=$LAB_RDV_PORT LOG_FORMAT=json LOG_LEVEL=debug "$@" \
    "$HP_BUILD_DIR/holepunch-rendezvous"
  lab_wait_http rdv "$LAB_RDV_URL/healthz" 10 rendezvous ||
    lab_fail "the rendezvous did not answer $LAB_RDV_URL/healthz within 10 s"
  lab_log "rendezvous ready on $LAB_RDV_URL"
}

# lab_start_reflector [PORT]: the python address reflector on the rdv host.
lab_start_reflector() {
  local port=${1:-9000}
  lab_run "reflector$port" rdv "$LAB_PY" "$LAB_LIB_DIR/standin.py" reflect --port "$port" --duration 60
  lab_wait_listen rdv "$port" 5 || lab_fail "the reflector did not listen on :$port"
}

_lab_alive() { kill -0 "$1" 2>/dev/null; }

# lab_wait_listen NODE PORT TIMEOUT [PROC]: poll ss until a TCP listener on
# PORT exists in NODE. Fails early if PROC died.
lab_wait_listen() {
  local node=$1 port=$2 n=$(($3 * 10)) proc=${4:-}
  while ((n-- > 0)); do
    [[ -n "$(lab_exec "$node" ss -Hltn "sport = :$port" 2>/dev/null)" ]] && return 0
    [[ -n "$proc" ]] && ! _lab_alive "${LAB_PID[$proc]}" && return 1
    sleep 0.1
  done
  return 1
}

# lab_wait_http NODE URL TIMEOUT [PROC]: poll until URL answers 200.
lab_wait_http() {
  local node=$1 url=$2 n=$(($3 * 10)) proc=${4:-}
  while ((n-- > 0)); do
    lab_exec "$node" curl -fsS -m 1 -o /dev/null "$url" 2>/dev/null && return 0
    [[ -n "$proc" ]] && ! _lab_alive "${LAB_PID[$proc]}" && return 1
    sleep 0.1
  done
  return 1
}

# lab_wait_file FILE TIMEOUT: poll until FILE exists.
lab_wait_file() {
  local n=$(($2 * 10))
  while ((n-- > 0)); do
    [[ -e "$1" ]] && return 0
    sleep 0.1
  done
  return 1
}

# lab_wait_log PROC REGEX TIMEOUT: poll until PROC's stderr has a line
# matching the extended REGEX. Fails early if PROC died without it.
lab_wait_log() {
  local proc=$1 re=$2 n=$(($3 * 10)) f="$LAB_DIR/$1.err"
  while ((n-- > 0)); do
    grep -Eq -- "$re" "$f" 2>/dev/null && return 0
    if ! _lab_alive "${LAB_PID[$proc]}"; then
      grep -Eq -- "$re" "$f" 2>/dev/null
      return
    fi
    sleep 0.1
  done
  return 1
}

# lab_wait_exit PROC TIMEOUT: wait (bounded) for PROC to exit. Sets
# LAB_RC[PROC] to its exit code and LAB_ELAPSED[PROC]; on timeout kills it,
# sets LAB_RC[PROC]=timeout and returns 1.
lab_wait_exit() {
  local proc=$1 pid=${LAB_PID[$1]:?lab: unknown process $1} n=$(($2 * 20)) rc
  while ((n-- > 0)) && _lab_alive "$pid"; do
    # A zombie child still answers kill -0; check its state too.
    [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" == Z* ]] && break
    sleep 0.05
  done
  if _lab_alive "$pid" && [[ "$(ps -o stat= -p "$pid" 2>/dev/null)" != Z* ]]; then
    kill "$pid" 2>/dev/null
    n=20
    while ((n-- > 0)) && _lab_alive "$pid"; do sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    LAB_RC[$proc]=timeout
    LAB_ELAPSED[$proc]=$(_lab_since "${LAB_PROC_T0[$proc]}")
    lab_log "$proc did not exit within $2 s: killed"
    return 1
  fi
  rc=0
  wait "$pid" || rc=$?
  LAB_RC[$proc]=$rc
  LAB_ELAPSED[$proc]=$(_lab_since "${LAB_PROC_T0[$proc]}")
  lab_log "$proc exited with code $rc after ${LAB_ELAPSED[$proc]} s"
  return 0
}

# lab_stop PROC: SIGTERM, then wait (bounded), then SIGKILL.
lab_stop() {
  local pid=${LAB_PID[$1]:-}
  [[ -n "$pid" ]] || return 0
  kill "$pid" 2>/dev/null || return 0
  lab_wait_exit "$1" 3 || kill -9 "$pid" 2>/dev/null
  return 0
}

# --- IPv6 (optional) -------------------------------------------------------
# lab_enable_ipv6: dual stack for the rest of the lab, with documentation
# addresses (2001:db8::/32) only inside the lab's namespaces. Call it right
# after lab_create, before adding NATs and hosts. No NAT for IPv6: each NAT
# router is also a stateful IPv6 firewall (table ip6 hpfw6, same filter
# mode as its IPv4 side); hosts get global addresses in their LAN's /64.
#   r1 <-> r2       2001:db8:0:fe::1 / ::2
#   r1 <-> rdv      2001:db8:0:1::1 / rdv 2001:db8:0:1::100
#   core <-> NAT N  2001:db8:f:N::1 / NAT ::2      LAN N  2001:db8:N::/64 (router ::1, hosts ::10+i)
#   r2 <-> pub k    2001:db8:e:k::1 / host ::2
# Static addresses (nodad), no router advertisements, static routes: each
# core router routes the prefixes behind the other one through it.
LAB_V6=0
LAB_RDV_IP6=2001:db8:0:1::100
declare -A LAB_IP6=() # host / NAT name -> its IPv6 address (NAT: WAN)

_lab_v6_on() {
  # shellcheck disable=SC2016 # expanded by the inner shell
  lab_exec "$1" sh -c 'for k in all default; do
      sysctl -qw net.ipv6.conf.$k.disable_ipv6=0 net.ipv6.conf.$k.accept_ra=0 \
        net.ipv6.conf.$k.accept_dad=0 net.ipv6.conf.$k.autoconf=0
    done
    for d in /proc/sys/net/ipv6/conf/*/disable_ipv6; do echo 0 >"$d"; done' >/dev/null 2>&1 ||
    lab_fail "cannot enable IPv6 in $1"
  [[ "${2:-}" == forward ]] && lab_exec "$1" sysctl -qw net.ipv6.conf.all.forwarding=1 >/dev/null
  return 0
}

_lab_addr6() { lab_exec "$1" ip -6 addr add "$3" dev "$2" nodad || lab_fail "cannot add $3 to $1:$2"; }

# _lab_route6_other SIDE PREFIX: the core router that is not SIDE routes
# PREFIX through SIDE.
_lab_route6_other() {
  if [[ $1 == r1 ]]; then
    lab_exec r2 ip -6 route add "$2" via 2001:db8:0:fe::1
  else
    lab_exec r1 ip -6 route add "$2" via 2001:db8:0:fe::2
  fi
}

lab_enable_ipv6() {
  [[ -n "$LAB_DIR" ]] || lab_fail "lab_enable_ipv6 comes after lab_create"
  ((LAB_NATS == 0 && LAB_PUBS == 0)) || lab_fail "lab_enable_ipv6 comes before adding NATs and hosts"
  LAB_V6=1
  _lab_v6_on r1 forward
  _lab_v6_on r2 forward
  _lab_v6_on rdv
  _lab_addr6 r1 r2 2001:db8:0:fe::1/64
  _lab_addr6 r2 r1 2001:db8:0:fe::2/64
  _lab_addr6 r1 rdv 2001:db8:0:1::1/64
  _lab_addr6 rdv eth0 "$LAB_RDV_IP6/64"
  lab_exec rdv ip -6 route add default via 2001:db8:0:1::1
  _lab_route6_other r1 2001:db8:0:1::/64
  LAB_DESC+=("IPv6             on: rdv $LAB_RDV_IP6, r1 2001:db8:0:fe::1 <-> r2 ::2")
}

# The IPv6 firewall of a NAT router (no NAT): $1 = drop | reject.
_lab_fw6_rules() {
  local unsolicited='' input='iifname "wan" drop'
  if [[ $1 == reject ]]; then
    unsolicited='iifname "wan" meta l4proto tcp counter reject with tcp reset'
    input='iifname "wan" meta l4proto tcp counter reject with tcp reset
    iifname "wan" drop'
  fi
  cat <<EOF
table ip6 hpfw6 {
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    ct state invalid counter drop
    iifname "lan" oifname "wan" accept
    iifname "lan" oifname "lan" accept
    $unsolicited
  }
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
    $input
  }
}
EOF
}

# _lab_nat_v6 NAME N SIDE: IPv6 for NAT router NAME (index N, on SIDE).
_lab_nat_v6() {
  local nat=$1 n=$2 side=$3
  _lab_v6_on "$nat" forward
  _lab_addr6 "$side" "nat$n" "2001:db8:f:$n::1/64"
  _lab_addr6 "$nat" wan "2001:db8:f:$n::2/64"
  _lab_addr6 "$nat" lan "2001:db8:$n::1/64"
  lab_exec "$nat" ip -6 route add default via "2001:db8:f:$n::1"
  lab_exec "$side" ip -6 route add "2001:db8:$n::/64" via "2001:db8:f:$n::2"
  _lab_route6_other "$side" "2001:db8:f:$n::/64"
  _lab_route6_other "$side" "2001:db8:$n::/64"
  _lab_fw6_rules "${LAB_NAT_FILTER[$nat]}" >"$LAB_DIR/nft6-$nat.nft"
  lab_exec "$nat" nft -f "$LAB_DIR/nft6-$nat.nft" ||
    lab_fail "nft rejected the IPv6 firewall of $nat (see $LAB_DIR/nft6-$nat.nft)"
  LAB_IP6[$nat]="2001:db8:f:$n::2"
  LAB_DESC+=("  IPv6 on $nat: WAN 2001:db8:f:$n::2, LAN 2001:db8:$n::/64, stateful firewall (${LAB_NAT_FILTER[$nat]}), no NAT")
}

# --- assertions -----------------------------------------------------------

# lab_expect_rc PROC RC: PROC exited with code RC.
lab_expect_rc() {
  [[ "${LAB_RC[$1]:-none}" == "$2" ]] ||
    lab_fail "$1: expected exit code $2, got ${LAB_RC[$1]:-none (never waited for)}"
  lab_log "ok: $1 exited with $2"
}

# lab_expect_grep FILE EREGEX WHAT: FILE has a line matching EREGEX.
lab_expect_grep() {
  grep -Eq -- "$2" "$1" 2>/dev/null || lab_fail "$3: no line matching /$2/ in $(basename "$1")"
  lab_log "ok: $3"
}

# lab_expect_no_grep FILE EREGEX WHAT: FILE has no line matching EREGEX.
lab_expect_no_grep() {
  ! grep -Eq -- "$2" "$1" 2>/dev/null || lab_fail "$3: unexpected line matching /$2/ in $(basename "$1")"
  lab_log "ok: $3"
}

# lab_json_field PROC MESSAGE_EREGEX FIELD: the FIELD of the first JSON log
# line of PROC (stderr) whose "message" matches the regex; empty if none.
lab_json_field() {
  "$LAB_PY" "$LAB_JSONLOG" field "$LAB_DIR/$1.err" "$2" "$3"
}

# lab_json_count PROC MESSAGE_EREGEX: number of JSON log lines of PROC whose
# message matches.
lab_json_count() {
  "$LAB_PY" "$LAB_JSONLOG" count "$LAB_DIR/$1.err" "$2"
}

# --- the worker's log and output ------------------------------------------
# The worker's JSON log messages the scenarios look for (src/lib/punch.c,
# src/lib/holepunch.c, src/cli/greet.c). One place to keep them in step.
LAB_MSG_DIRECT='^direct connection established$'   # fields addr, elapsed_ms
LAB_MSG_SECURED='^secure channel up'                # field elapsed_ms (from 0.2.1)
LAB_MSG_MAPPING='^our mapping: '                    # field mapped
LAB_MAPPING_FIELD=mapped
LAB_MSG_GIVEUP='giving up: no direct connection to' # the one summary line
LAB_MSG_REJECT='rejected (inbound|outbound) connection'
# The worker's stdout (src/cli/greet.c): "peer <id> says: hello from <id> in room <room>".
LAB_GREETING_PREFIX='^peer '

# lab_worker_addr PROC: the "addr" of PROC's "direct connection established".
lab_worker_addr() { lab_json_field "$1" "$LAB_MSG_DIRECT" addr; }

# lab_worker_mapping PROC: PROC's public mapping as the rendezvous saw it.
lab_worker_mapping() { lab_json_field "$1" "$LAB_MSG_MAPPING" "${LAB_MAPPING_FIELD:-observed}"; }

# lab_expect_direct PROC PEER [ADDR]: PROC exited 0, printed PEER's greeting
# on stdout, and logged a direct connection (to ADDR, when given).
lab_expect_direct() {
  local proc=$1 peer=$2 want=${3:-} addr
  lab_expect_rc "$proc" 0
  lab_expect_grep "$LAB_DIR/$proc.out" "$LAB_GREETING_PREFIX$peer says: hello from $peer " "$proc printed the greeting of $peer"
  addr=$(lab_worker_addr "$proc")
  [[ -n "$addr" ]] || lab_fail "$proc: no '$LAB_MSG_DIRECT' log line with an addr"
  if [[ -n "$want" && "$addr" != "$want" ]]; then
    lab_fail "$proc: direct connection to $addr, expected $want"
  fi
  [[ "$addr" != "$LAB_RDV_IP:"* ]] || lab_fail "$proc: 'direct' connection goes to the rendezvous ($addr)"
  LAB_ADDR[$proc]=$addr
  lab_log "ok: $proc connected directly to $addr${want:+ (as expected)}"
}
declare -A LAB_ADDR=()

# lab_expect_give_up_details PROC PEER: PROC's give-up summary (JSON) names
# what it tried: PEER's public mapping among its candidates, with at least one
# connect attempt, and PROC's own mapping.
lab_expect_give_up_details() {
  local proc=$1 peer=$2 out
  out=$("$LAB_PY" - "$LAB_DIR/$proc.err" "$LAB_MSG_GIVEUP" "$(lab_worker_mapping "$peer")" \
    "$(lab_worker_mapping "$proc")" <<'EOF'
import json, re, sys
path, pattern, peer_map, own_map = sys.argv[1:5]
ev = None
with open(path, errors="replace") as f:
    for line in f:
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if isinstance(e, dict) and re.search(pattern, str(e.get("message", ""))):
            ev = e
if ev is None:
    sys.exit("no give-up line")
if not peer_map:
    sys.exit("the peer logged no mapping")
cands = ev.get("candidates") or []
hit = [c for c in cands if isinstance(c, dict) and c.get("addr") == peer_map]
if not hit or not int(hit[0].get("attempts", 0)) > 0:
    sys.exit(f"candidates {cands} do not show attempts to the peer's mapping {peer_map}")
if ev.get("mapped") != own_map:
    sys.exit(f"mapped is {ev.get('mapped')}, expected own mapping {own_map}")
print(f"tried {peer_map} {hit[0]['attempts']} times ({hit[0].get('last_error')}), "
      f"inbound_seen {ev.get('inbound_seen')}, hint: {ev.get('hint')}")
EOF
  ) || lab_fail "$proc's give-up summary: ${out:-see above}"
  lab_log "ok: $proc's give-up summary: $out"
}

# lab_expect_pair_outcome A B: the two workers of one pairing agree and
# each outcome is explained: both exit 0 with a direct connection to the
# other's mapping, or both exit 5 (no direct connection) with a give-up
# summary that lists the attempts to the other's mapping. Anything else
# (one connected and the other not, a hang, another exit code) fails. Sets
# LAB_OUTCOME to "direct" or "gave-up".
lab_expect_pair_outcome() {
  local a=$1 b=$2
  if [[ ${LAB_RC[$a]:-} == 0 && ${LAB_RC[$b]:-} == 0 ]]; then
    lab_expect_direct "$a" "$b" "$(lab_worker_mapping "$b")"
    lab_expect_direct "$b" "$a" "$(lab_worker_mapping "$a")"
    LAB_OUTCOME=direct
  elif [[ ${LAB_RC[$a]:-} == 5 && ${LAB_RC[$b]:-} == 5 ]]; then
    lab_expect_give_up_details "$a" "$b"
    lab_expect_give_up_details "$b" "$a"
    lab_expect_no_grep "$LAB_DIR/$a.out" . "$a printed nothing on stdout"
    lab_expect_no_grep "$LAB_DIR/$b.out" . "$b printed nothing on stdout"
    LAB_OUTCOME=gave-up
  else
    lab_fail "the workers disagree or failed otherwise: $a exit ${LAB_RC[$a]:-none}, $b exit ${LAB_RC[$b]:-none} (expected 0/0 or 5/5)"
  fi
}
LAB_OUTCOME=""

# lab_json_count_field PROC MESSAGE_EREGEX FIELD VALUE: number of JSON log
# lines of PROC whose message matches and whose FIELD equals VALUE.
lab_json_count_field() {
  "$LAB_PY" "$LAB_JSONLOG" count "$LAB_DIR/$1.err" "$2" "$3" "$4"
}

# lab_json_field_where PROC MESSAGE_EREGEX FIELD VALUE OUT: the OUT field of
# the first matching line whose FIELD equals VALUE.
lab_json_field_where() {
  "$LAB_PY" "$LAB_JSONLOG" where "$LAB_DIR/$1.err" "$2" "$3" "$4" "$5"
}

# lab_stop_rendezvous: the rendezvous must have survived the scenario, and
# shut down cleanly (exit 0) on SIGTERM, as on Cloud Run. Under ASan a leak
# or a crash on shutdown makes this fail.
lab_stop_rendezvous() {
  local pid=${LAB_PID[rendezvous]:-}
  [[ -n "$pid" ]] || return 0
  [[ -z "${LAB_RC[rendezvous]:-}" ]] || return 0
  _lab_alive "$pid" || { lab_wait_exit rendezvous 1; lab_fail "the rendezvous died during the scenario (exit ${LAB_RC[rendezvous]})"; }
  kill -TERM "$pid"
  lab_wait_exit rendezvous 15 || lab_fail "the rendezvous did not shut down within 15 s of SIGTERM"
  lab_expect_rc rendezvous 0
}

# lab_pass [TEXT]: the scenario's end: checks the rendezvous, prints PASS.
lab_pass() {
  lab_stop_rendezvous
  lab_log "PASS: ${1:-$(basename "$0" .sh)}"
}

# --- cleanup --------------------------------------------------------------

lab_dump_logs() {
  local f
  [[ -n "$LAB_DIR" && -d "$LAB_DIR" ]] || return 0
  for f in "$LAB_DIR"/*.out "$LAB_DIR"/*.err; do
    [[ -s "$f" ]] || continue
    echo "----- $(basename "$f") (last 40 lines) -----" >&2
    tail -n 40 "$f" >&2
  done
  echo "----- logs kept in $LAB_DIR -----" >&2
}

# Kill every process in every lab namespace, delete the namespaces, and keep
# the logs when the run failed. Safe to call twice.
lab_cleanup() {
  local rc=$? ns n
  set +e
  trap - EXIT INT TERM
  ((rc != 0)) && LAB_FAILED=1
  if ((LAB_FAILED)) && [[ "${LAB_DUMP_ON_FAIL:-1}" == 1 ]]; then
    lab_dump_logs
  fi
  for ns in "${LAB_NS[@]}"; do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null
  done
  n=30
  for ns in "${LAB_NS[@]}"; do
    while ((n > 0)) && [[ -n "$(ip netns pids "$ns" 2>/dev/null)" ]]; do
      sleep 0.1
      n=$((n - 1))
    done
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
  done
  wait 2>/dev/null
  for ns in "${LAB_NS[@]}"; do
    ip netns del "$ns" 2>/dev/null || echo "lab: could not delete namespace $ns" >&2
  done
  LAB_NS=()
  if ((LAB_FAILED == 0)) && [[ -n "$LAB_DIR" && "${HP_KEEP_LOGS:-0}" != 1 ]]; then
    rm -rf "$LAB_DIR"
  fi
  exit "$rc"
}
