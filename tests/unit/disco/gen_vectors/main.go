// Command gen_vectors writes tests/unit/disco/vectors.json: disco packets
// sealed by tailscale's own code (tailscale.com/disco for the messages,
// tailscale.com/types/key for the NaCl box, assembled as magicsock's
// sendDiscoMessage does), and tailscale's own verdict (disco.Parse) on
// plaintexts at the edges of the format. lopower's tests open and parse
// these and must agree field by field.
//
// Run by hand, from this directory:
//
//	GOFLAGS=-mod=mod go run . > ../vectors.json
//
// The output is reproducible: the keys are fixed, and crypto/rand.Reader
// (which key.DiscoShared.Seal reads its nonce from) is replaced by a
// seeded ChaCha8 stream, so rerunning gives the same bytes.
package main

import (
	crand "crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"time"

	"go4.org/mem"
	"tailscale.com/disco"
	"tailscale.com/types/key"
)

const tailscaleVersion = "v1.98.10" // keep in step with go.mod

type endpointJSON struct {
	Addr string `json:"addr"` // netip.AddrPort.String(), for people reading the file
	IP   string `json:"ip"`   // 4 bytes (hex) for IPv4, 16 for IPv6, as netip holds it after Unmap
	Port uint16 `json:"port"`
}

type messageJSON struct {
	Type      string          `json:"type"`
	TxID      string          `json:"tx_id,omitempty"`
	NodeKey   *string         `json:"node_key,omitempty"` // "" when tailscale has none (zero key)
	Padding   *int            `json:"padding,omitempty"`
	Src       *endpointJSON   `json:"src,omitempty"`
	Endpoints *[]endpointJSON `json:"endpoints,omitempty"` // present, maybe empty, for call_me_maybe
}

type sealedJSON struct {
	Name    string      `json:"name"`
	From    string      `json:"from"`
	To      string      `json:"to"`
	Packet  string      `json:"packet"`
	Message messageJSON `json:"message"`
}

type plaintextJSON struct {
	Name      string       `json:"name"`
	Plaintext string       `json:"plaintext"`
	Error     string       `json:"error,omitempty"` // disco.Parse's error text
	Message   *messageJSON `json:"message,omitempty"`
}

type keysJSON struct {
	APrivate   string `json:"a_private"`
	APublic    string `json:"a_public"`
	BPrivate   string `json:"b_private"`
	BPublic    string `json:"b_public"`
	NodePublic string `json:"node_public"`
}

type vectorsJSON struct {
	Comment          string          `json:"comment"`
	TailscaleVersion string          `json:"tailscale_version"`
	Keys             keysJSON        `json:"keys"`
	Sealed           []sealedJSON    `json:"sealed"`
	Plaintexts       []plaintextJSON `json:"plaintexts"`
}

func seed32(label string) [32]byte { return sha256.Sum256([]byte("lopower disco vectors: " + label)) }

// discoPrivate is a fixed key, clamped as key.NewDisco clamps.
func discoPrivate(label string) (key.DiscoPrivate, [32]byte) {
	raw := seed32(label)
	raw[0] &= 248
	raw[31] = (raw[31] & 127) | 64
	return key.DiscoPrivateFromRaw32(mem.B(raw[:])), raw
}

func endpointOf(ap netip.AddrPort) endpointJSON {
	ip := ap.Addr().AsSlice()
	return endpointJSON{Addr: ap.String(), IP: hex.EncodeToString(ip), Port: ap.Port()}
}

func describe(m disco.Message) messageJSON {
	switch m := m.(type) {
	case *disco.Ping:
		nk := ""
		if !m.NodeKey.IsZero() {
			raw := m.NodeKey.Raw32()
			nk = hex.EncodeToString(raw[:])
		}
		padding := m.Padding
		return messageJSON{Type: "ping", TxID: hex.EncodeToString(m.TxID[:]), NodeKey: &nk, Padding: &padding}
	case *disco.Pong:
		src := endpointOf(m.Src)
		return messageJSON{Type: "pong", TxID: hex.EncodeToString(m.TxID[:]), Src: &src}
	case *disco.CallMeMaybe:
		eps := []endpointJSON{}
		for _, ap := range m.MyNumber {
			eps = append(eps, endpointOf(ap))
		}
		return messageJSON{Type: "call_me_maybe", Endpoints: &eps}
	default:
		return messageJSON{Type: fmt.Sprintf("%T", m)}
	}
}

// sealFrom builds a packet exactly as magicsock's sendDiscoMessage does.
func sealFrom(from key.DiscoPrivate, to key.DiscoPublic, m disco.Message) []byte {
	pkt := append([]byte(disco.Magic), from.Public().AppendTo(nil)...)
	return append(pkt, from.Shared(to).Seal(m.AppendMarshal(nil))...)
}

// openAt checks the packet the way magicsock's handleDiscoMessage reads it.
func openAt(to key.DiscoPrivate, pkt []byte) disco.Message {
	src, ok := disco.Source(pkt)
	if !ok {
		panic("not disco")
	}
	plain, ok := to.Shared(key.DiscoPublicFromRaw32(mem.B(src))).Open(pkt[len(disco.Magic)+32:])
	if !ok {
		panic("tailscale cannot open its own packet")
	}
	m, err := disco.Parse(plain)
	if err != nil {
		panic(err)
	}
	return m
}

func txid(label string) (t [12]byte) {
	s := seed32("txid " + label)
	copy(t[:], s[:])
	return
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func header(t disco.MessageType, ver byte, body ...[]byte) []byte {
	out := []byte{byte(t), ver}
	for _, b := range body {
		out = append(out, b...)
	}
	return out
}

func filled(n int, b byte) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = b + byte(i)
	}
	return out
}

func ip16(s string) []byte { a := netip.MustParseAddr(s).As16(); return a[:] }

func port(p uint16) []byte { return binary.BigEndian.AppendUint16(nil, p) }

func plaintexts(nodeKey key.NodePublic, other key.DiscoPublic) []plaintextJSON {
	tx := txid("edge")
	nk := nodeKey.AppendTo(nil)
	relayEndpoint := disco.UDPRelayEndpoint{
		ServerDisco: other, ClientDisco: [2]key.DiscoPublic{other, other},
		LamportID: 7, VNI: 9, BindLifetime: time.Second, SteadyStateLifetime: time.Minute,
		AddrPorts: []netip.AddrPort{ap("192.0.2.1:7777")},
	}
	cases := []struct {
		name  string
		plain []byte
	}{
		{"empty", nil},
		{"type_only", []byte{byte(disco.TypePing)}},
		{"type_0", header(0, 0, filled(44, 1))},
		{"type_10", header(10, 0, filled(44, 1))},
		{"type_255", header(255, 0)},
		{"ping_no_body", header(disco.TypePing, 0)},
		{"ping_body_11", header(disco.TypePing, 0, tx[:11])},
		{"ping_body_12", header(disco.TypePing, 0, tx[:])},
		{"ping_body_13", header(disco.TypePing, 0, tx[:], []byte{0})},
		{"ping_body_43", header(disco.TypePing, 0, tx[:], filled(31, 0x40))},
		{"ping_with_key", header(disco.TypePing, 0, tx[:], nk)},
		{"ping_with_zero_key", header(disco.TypePing, 0, tx[:], make([]byte, 32))},
		{"ping_with_zero_key_and_padding", header(disco.TypePing, 0, tx[:], make([]byte, 32+5))},
		{"ping_with_key_and_padding_7", header(disco.TypePing, 0, tx[:], nk, make([]byte, 7))},
		{"ping_with_key_and_nonzero_tail", header(disco.TypePing, 0, tx[:], nk, filled(3, 0xa0))},
		{"ping_version_1", header(disco.TypePing, 1, tx[:], nk)},
		{"ping_version_255_body_12", header(disco.TypePing, 255, tx[:])},
		{"pong_no_body", header(disco.TypePong, 0)},
		{"pong_body_29", header(disco.TypePong, 0, tx[:], ip16("::ffff:192.0.2.7"), port(41641)[:1])},
		{"pong_v4_mapped", header(disco.TypePong, 0, tx[:], ip16("::ffff:192.0.2.7"), port(41641))},
		{"pong_v6", header(disco.TypePong, 0, tx[:], ip16("2001:db8::7"), port(443))},
		{"pong_v4_compatible_stays_v6", header(disco.TypePong, 0, tx[:], ip16("::c000:207"), port(1))},
		{"pong_mapped_zero", header(disco.TypePong, 0, tx[:], ip16("::ffff:0.0.0.0"), port(0))},
		{"pong_all_zero", header(disco.TypePong, 0, tx[:], ip16("::"), port(65535))},
		{"pong_trailing_bytes", header(disco.TypePong, 0, tx[:], ip16("::ffff:10.1.2.3"), port(7), filled(10, 1))},
		{"pong_version_3", header(disco.TypePong, 3, tx[:], ip16("::ffff:10.1.2.3"), port(7))},
		{"cmm_empty", header(disco.TypeCallMeMaybe, 0)},
		{"cmm_one_v4", header(disco.TypeCallMeMaybe, 0, ip16("::ffff:198.51.100.4"), port(41641))},
		{"cmm_v4_v6_v4", header(disco.TypeCallMeMaybe, 0,
			ip16("::ffff:198.51.100.4"), port(41641), ip16("fe80::1"), port(2), ip16("::ffff:127.0.0.1"), port(3))},
		{"cmm_body_17", header(disco.TypeCallMeMaybe, 0, ip16("::ffff:198.51.100.4"), port(41641)[:1])},
		{"cmm_body_19", header(disco.TypeCallMeMaybe, 0, ip16("::ffff:198.51.100.4"), port(41641), []byte{0})},
		{"cmm_body_35", header(disco.TypeCallMeMaybe, 0, ip16("::ffff:198.51.100.4"), port(1), ip16("::1"))},
		{"cmm_version_1", header(disco.TypeCallMeMaybe, 1, ip16("::ffff:198.51.100.4"), port(41641))},
		{"bind_udp_relay_endpoint", (&disco.BindUDPRelayEndpoint{}).AppendMarshal(nil)},
		{"bind_udp_relay_endpoint_short", header(disco.TypeBindUDPRelayEndpoint, 0, filled(10, 0))},
		{"bind_udp_relay_endpoint_challenge", (&disco.BindUDPRelayEndpointChallenge{}).AppendMarshal(nil)},
		{"bind_udp_relay_endpoint_answer", (&disco.BindUDPRelayEndpointAnswer{}).AppendMarshal(nil)},
		{"call_me_maybe_via", (&disco.CallMeMaybeVia{UDPRelayEndpoint: relayEndpoint}).AppendMarshal(nil)},
		{"allocate_udp_relay_endpoint_request", (&disco.AllocateUDPRelayEndpointRequest{
			ClientDisco: [2]key.DiscoPublic{other, other}, Generation: 3}).AppendMarshal(nil)},
		{"allocate_udp_relay_endpoint_response", (&disco.AllocateUDPRelayEndpointResponse{
			Generation: 3, UDPRelayEndpoint: relayEndpoint}).AppendMarshal(nil)},
	}
	out := []plaintextJSON{}
	for _, c := range cases {
		v := plaintextJSON{Name: c.name, Plaintext: hex.EncodeToString(c.plain)}
		if m, err := disco.Parse(c.plain); err != nil {
			v.Error = err.Error()
		} else {
			d := describe(m)
			v.Message = &d
		}
		out = append(out, v)
	}
	return out
}

func main() {
	// Deterministic nonces: key.DiscoShared.Seal reads crypto/rand.Reader.
	crand.Reader = mrand.NewChaCha8(seed32("nonces"))

	a, aRaw := discoPrivate("a")
	b, bRaw := discoPrivate("b")
	nodeRaw := seed32("node")
	nodeKey := key.NodePrivateFromRaw32(mem.B(nodeRaw[:])).Public()
	nodeKeyRaw := nodeKey.Raw32()
	aPub, bPub := a.Public().Raw32(), b.Public().Raw32()

	type sealCase struct {
		name     string
		from, to string
		m        disco.Message
	}
	cases := []sealCase{
		{"ping", "a", "b", &disco.Ping{TxID: txid("ping"), NodeKey: nodeKey}},
		{"ping_without_node_key", "a", "b", &disco.Ping{TxID: txid("ping old")}},
		{"ping_padded", "a", "b", &disco.Ping{TxID: txid("ping padded"), NodeKey: nodeKey, Padding: 100}},
		{"pong_v4", "b", "a", &disco.Pong{TxID: txid("ping"), Src: ap("203.0.113.9:41641")}},
		{"pong_v6", "b", "a", &disco.Pong{TxID: txid("ping padded"), Src: ap("[2001:db8:1::9]:12345")}},
		{"call_me_maybe", "a", "b", &disco.CallMeMaybe{MyNumber: []netip.AddrPort{
			ap("203.0.113.9:41641"), ap("[2001:db8:1::9]:41641"), ap("192.168.1.20:41641")}}},
		{"call_me_maybe_empty", "a", "b", &disco.CallMeMaybe{}},
		{"bind_udp_relay_endpoint", "b", "a", &disco.BindUDPRelayEndpoint{
			BindUDPRelayEndpointCommon: disco.BindUDPRelayEndpointCommon{VNI: 1, Generation: 2, RemoteKey: a.Public()}}},
	}
	privs := map[string]key.DiscoPrivate{"a": a, "b": b}
	sealed := []sealedJSON{}
	for _, c := range cases {
		pkt := sealFrom(privs[c.from], privs[c.to].Public(), c.m)
		got := openAt(privs[c.to], pkt)
		sealed = append(sealed, sealedJSON{Name: c.name, From: c.from, To: c.to,
			Packet: hex.EncodeToString(pkt), Message: describe(got)})
	}

	doc := vectorsJSON{
		Comment: "Generated by tests/unit/disco/gen_vectors (tailscale.com/disco and types/key " + tailscaleVersion +
			"); do not edit. 'sealed': packets built as magicsock sends them, 'message' is tailscale's own parse of each. " +
			"'plaintexts': tailscale's disco.Parse verdict on each plaintext.",
		TailscaleVersion: tailscaleVersion,
		Keys: keysJSON{
			APrivate: hex.EncodeToString(aRaw[:]), APublic: hex.EncodeToString(aPub[:]),
			BPrivate: hex.EncodeToString(bRaw[:]), BPublic: hex.EncodeToString(bPub[:]),
			NodePublic: hex.EncodeToString(nodeKeyRaw[:]),
		},
		Sealed:     sealed,
		Plaintexts: plaintexts(nodeKey, b.Public()),
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		panic(err)
	}
}
