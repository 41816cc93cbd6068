// Cairn's little bit of page JavaScript: live parts that refresh themselves, and wallet sign-in.
// Pages work without it except for those two things.
"use strict";

// An element with data-refresh="URL" (and data-every="seconds") has its inner HTML replaced by
// what URL returns, until that answer carries data-done on its first element.
function refreshLive(el) {
  const every = Number(el.dataset.every || 2) * 1000;
  const tick = async () => {
    try {
      const reply = await fetch(el.dataset.refresh, { headers: { "Accept": "text/html" } });
      if (reply.ok) {
        el.innerHTML = await reply.text();
        focusableScrollers();
        if (el.querySelector("[data-done]")) return;
      }
    } catch (e) { /* the node restarted: try again */ }
    setTimeout(tick, every);
  };
  setTimeout(tick, every);
}

// The session's form token, sent with posts made from scripts (forms carry it as a hidden field;
// the node refuses a post with the session cookie and without the token).
function formToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? { "X-CSRF-Token": meta.content } : {};
}

// What went wrong, from a reply that is JSON ({detail}) or, for a refused post, an error page.
async function failureOf(reply, fallback) {
  try {
    return (await reply.json()).detail || fallback;
  } catch (e) {
    return `${fallback} (the node answered ${reply.status}); reload the page and try again`;
  }
}

// Sign-In with Ethereum through an injected EIP-1193 wallet.
async function walletSignIn(button) {
  const status = document.getElementById("wallet-status");
  const say = (text) => { status.textContent = text; };
  if (!window.ethereum) {
    say("No browser wallet found. Install one (MetaMask, Rabby, Frame) or, on a dev node, pick a dev account.");
    return;
  }
  try {
    button.disabled = true;
    const [address] = await window.ethereum.request({ method: "eth_requestAccounts" });
    const form = new FormData();
    form.append("address", address);
    const prepared = await fetch("/signin/message", { method: "POST", body: form, headers: formToken() });
    if (!prepared.ok) throw new Error(await failureOf(prepared, "could not prepare the message"));
    const { message } = await prepared.json();
    say("Sign the message in your wallet…");
    const hex = "0x" + Array.from(new TextEncoder().encode(message), (b) => b.toString(16).padStart(2, "0")).join("");
    const signature = await window.ethereum.request({ method: "personal_sign", params: [hex, address] });
    const reply = await fetch("/signin/wallet", {
      method: "POST",
      headers: { "Content-Type": "application/json", ...formToken() },
      body: JSON.stringify({ message, signature, next: button.dataset.next }),
    });
    if (!reply.ok) throw new Error(await failureOf(reply, "sign-in failed"));
    const body = await reply.json();
    window.location.assign(body.next || "/");
  } catch (e) {
    say("Sign-in failed: " + (e.message || e));
  } finally {
    button.disabled = false;
  }
}

// A table or drawing wider than the screen scrolls sideways in its box: make that box
// reachable by keyboard (arrow keys then scroll it), named after its heading.
function focusableScrollers() {
  document.querySelectorAll(".table-wrap, .lineage-wrap").forEach((box) => {
    if (box.scrollWidth > box.clientWidth + 1 && !box.hasAttribute("tabindex")) {
      box.setAttribute("tabindex", "0");
      box.setAttribute("role", "region");
      const caption = box.querySelector("caption");
      let heading = box.previousElementSibling;
      while (heading && !/^H[1-6]$/.test(heading.tagName)) heading = heading.previousElementSibling;
      box.setAttribute("aria-label", (caption || heading || { textContent: "Table" }).textContent.trim() + " (scrolls sideways)");
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  focusableScrollers();
  document.querySelectorAll("[data-refresh]").forEach(refreshLive);
  // "Go back" on an error page (a javascript: link would be inline script, which the CSP refuses)
  document.querySelectorAll("a[data-back]").forEach((link) => link.addEventListener("click", (event) => {
    if (window.history.length > 1) {
      event.preventDefault();
      window.history.back();
    }
  }));
  const wallet = document.getElementById("wallet-signin");
  if (wallet) wallet.addEventListener("click", () => walletSignIn(wallet));
});
