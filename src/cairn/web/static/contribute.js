// Contributions signed by a browser wallet. The node prepares the upload's EIP-712 document
// (POST /api/v1/datasets/{id}/contributions/typed-data), the wallet signs it
// (eth_signTypedData_v4), and the form is sent to the page with the signature, which shows the
// verdicts. The node checks that the signature is the signed-in account's over these records.
"use strict";

// What the wallet signs over: the file's text as the node splits it, or the form's one record.
async function uploadOf(form) {
  if (form.dataset.contribute === "file") {
    const file = form.querySelector("input[type=file]").files[0];
    if (!file) throw new Error("choose a JSONL file first");
    return { jsonl: await file.text() };
  }
  const record = {};
  form.querySelectorAll("[data-field]").forEach((el) => {
    const name = el.dataset.field;
    if (el.dataset.kind === "checkbox") {
      if (el.checked) record[name] = true;
    } else if (el.value !== "") {
      const number = Number(el.value);
      const numeric = el.dataset.kind === "integer" || el.dataset.kind === "number";
      record[name] = numeric && el.value.trim() !== "" && Number.isFinite(number) ? number : el.value;
    }
  });
  return { records: [JSON.stringify(record)] };
}

async function signAndSend(form, say) {
  if (!window.ethereum) {
    say("No browser wallet found. Install one (MetaMask, Rabby, Frame) to sign your upload.");
    return;
  }
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    const [account] = await window.ethereum.request({ method: "eth_requestAccounts" });
    if (account.toLowerCase() !== form.dataset.account.toLowerCase()) {
      throw new Error(`the wallet's account ${account} is not the signed-in ${form.dataset.account}; switch accounts in the wallet`);
    }
    const upload = await uploadOf(form);
    const nonce = form.elements.namedItem("nonce").value;
    const prepared = await fetch(`/api/v1/datasets/${form.dataset.dataset}/contributions/typed-data`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ nonce, ...upload }),
    });
    const typed = await prepared.json();
    if (!prepared.ok) throw new Error(typed.detail || "the node could not prepare the upload");
    say("Sign the upload in your wallet…");
    const signature = await window.ethereum.request({
      method: "eth_signTypedData_v4",
      params: [account, JSON.stringify(typed)],
    });
    form.elements.namedItem("signature").value = signature;
    if (upload.records) form.elements.namedItem("line").value = upload.records[0];
    say("Sending the signed upload…");
    form.submit(); // the page answers with the verdicts
  } catch (e) {
    say("Not sent: " + (e.message || e));
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const status = document.getElementById("contribute-status");
  const say = (text) => { status.textContent = text; };
  document.querySelectorAll("form[data-contribute][data-wallet='1']").forEach((form) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      signAndSend(form, say);
    });
  });
});
