package enrol

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/loa-commune/loa/protocol"
)

// signDomain names what the controller signs in a Response.
const signDomain = "loa-enrol/v1 response"

// Request is what a box sends: a fresh X25519 key for the answer to be
// sealed to, authenticated with the code's secret.
type Request struct {
	BoxKey []byte `json:"box_key"`
	MAC    []byte `json:"mac"`
}

// Response is the controller's answer: the box's configuration sealed to
// the box's key and signed by the controller's key, whose fingerprint the
// code carries.
type Response struct {
	ControllerKey string `json:"controller_key"` // ed25519:…
	ServerKey     []byte `json:"server_key"`     // X25519, ephemeral
	Sealed        []byte `json:"sealed"`         // AES-256-GCM nonce and ciphertext
	Sig           []byte `json:"sig"`
}

// NewRequest makes a request for code; the private key opens the response.
func NewRequest(c Code) (Request, *ecdh.PrivateKey, error) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return Request{}, nil, err
	}
	pub := priv.PublicKey().Bytes()
	return Request{BoxKey: pub, MAC: mac(c.MACKey(), pub)}, priv, nil
}

func mac(key, boxKey []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte("loa-enrol/v1 request"))
	h.Write(boxKey)
	return h.Sum(nil)
}

// Matches reports whether r was made with the code whose MAC key is macKey.
func (r Request) Matches(macKey []byte) bool {
	return len(r.BoxKey) == 32 && hmac.Equal(r.MAC, mac(macKey, r.BoxKey))
}

// Seal answers r, which Matches macKey, with config, signed by signer.
func Seal(r Request, macKey, config []byte, signer *protocol.Signer) (Response, error) {
	boxKey, err := ecdh.X25519().NewPublicKey(r.BoxKey)
	if err != nil {
		return Response{}, fmt.Errorf("enrolment request: %w", err)
	}
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		return Response{}, err
	}
	shared, err := priv.ECDH(boxKey)
	if err != nil {
		return Response{}, fmt.Errorf("enrolment request: %w", err)
	}
	serverKey := priv.PublicKey().Bytes()
	aead, err := sealer(shared, macKey)
	if err != nil {
		return Response{}, err
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	sealed := aead.Seal(nonce, nonce, config, append(append([]byte{}, r.BoxKey...), serverKey...))
	resp := Response{ControllerKey: protocol.FormatPublicKey(signer.Public()), ServerKey: serverKey, Sealed: sealed}
	resp.Sig = signer.SignFor(signDomain, resp.signed(r.BoxKey))
	return resp, nil
}

// signed is what the signature covers: the box's key (so an answer to
// another box's request does not pass), the controller's and the sealed
// configuration.
func (r Response) signed(boxKey []byte) []byte {
	b := append(append([]byte{}, boxKey...), r.ServerKey...)
	b = append(b, r.ControllerKey...)
	return append(b, r.Sealed...)
}

// sealer is the AEAD keyed by the X25519 secret and the code.
func sealer(shared, macKey []byte) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, shared, macKey, "loa-enrol/v1 config", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// Errors of Open.
var (
	// ErrWrongController: the answer is signed by a key other than the one
	// the code names. Someone may be in the way.
	ErrWrongController = errors.New("the controller that answered is not the one this code was made for (its key differs): someone may be between this box and the controller; enrol again on a network you trust, with a new code")
	ErrBadResponse     = errors.New("the controller's answer is damaged or forged")
)

// Open checks resp against the code and the request's key and returns the
// configuration and the controller's key.
func Open(resp Response, c Code, req Request, priv *ecdh.PrivateKey) (config []byte, controllerKey ed25519.PublicKey, err error) {
	key, err := protocol.ParsePublicKey(resp.ControllerKey)
	if err != nil {
		return nil, nil, ErrBadResponse
	}
	if Fingerprint(key) != c.Fingerprint {
		return nil, nil, ErrWrongController
	}
	if !protocol.VerifyFor(key, signDomain, resp.signed(req.BoxKey), resp.Sig) {
		return nil, nil, ErrBadResponse
	}
	serverKey, err := ecdh.X25519().NewPublicKey(resp.ServerKey)
	if err != nil {
		return nil, nil, ErrBadResponse
	}
	shared, err := priv.ECDH(serverKey)
	if err != nil {
		return nil, nil, ErrBadResponse
	}
	aead, err := sealer(shared, c.MACKey())
	if err != nil {
		return nil, nil, err
	}
	if len(resp.Sealed) < aead.NonceSize() {
		return nil, nil, ErrBadResponse
	}
	nonce, ct := resp.Sealed[:aead.NonceSize()], resp.Sealed[aead.NonceSize():]
	config, err = aead.Open(nil, nonce, ct, append(append([]byte{}, req.BoxKey...), resp.ServerKey...))
	if err != nil {
		return nil, nil, ErrBadResponse
	}
	return config, key, nil
}
