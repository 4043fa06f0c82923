// Written as the public pages for the real component are (MOICA's samples, government e-services): plain
// ES5, the component at http://localhost:61161 (here ?component= may name another), pkcs11info read from
// the pixels of /p11Image.bmp, everything else through the component's popup: open it, wait for its
// {"func":"getTbs"}, post one JSON string, read the JSON string it posts back.
var componentUrl = (function () {
  var match = /[?&]component=([^&]+)/.exec(window.location.search);
  return match ? decodeURIComponent(match[1]) : "http://localhost:61161";
})();
var componentOrigin = componentUrl.replace(/^(https?:\/\/[^\/]+).*$/, "$1");
var SITE_NOT_TRUSTED = 0x76000031;
var DOMAIN_FORBIDDEN = 0x7600000F;
var LOGIN_FAILED = 0x76100006;

var postTarget = null;
var timeoutId = null;
var tbsPackage = null;

function byId(id) { return document.getElementById(id); }

function hex(code) { return "0x" + (code >>> 0).toString(16).toUpperCase(); }

// -- 1. the image trick --------------------------------------------------------------------------------

function checkEnvironment() {
  var img = new Image();
  img.crossOrigin = "Anonymous";
  img.onload = function () {
    var canvas = document.createElement("canvas");
    canvas.width = 2000;
    canvas.height = 1;
    var ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    var output = "";
    for (var i = 0; i < 2000; i++) {
      var data = ctx.getImageData(i, 0, 1, 1).data;
      if (data[2] == 0) break;
      output = output + String.fromCharCode(data[2], data[1], data[0]);
    }
    if (output == "") output = '{"ret_code": 1979711501,"message": "執行檔錯誤或逾時"}';
    byId("env-result").textContent = output;
    showEnvironment(JSON.parse(output));
  };
  img.onerror = function () {
    byId("env-status").textContent = "未安裝客戶端程式或未啟動服務 The component is not installed or not running";
  };
  img.src = componentUrl + "/p11Image.bmp?" + new Date().getTime();
}

function showEnvironment(ret) {
  var status = byId("env-status");
  if (ret.ret_code == SITE_NOT_TRUSTED || ret.ret_code == DOMAIN_FORBIDDEN) {
    status.textContent = window.location.hostname + "非信任網站，請先加入信任網站";
    byId("add-domain").style.display = "";
    return;
  }
  if (ret.ret_code != 0) {
    status.textContent = "元件錯誤 " + hex(ret.ret_code) + " " + (ret.message || "");
    return;
  }
  var slots = ret.slots;
  var select = byId("slots");
  select.innerHTML = "";
  if (slots.length == 0) {
    status.textContent = "請確認讀卡機是否有正常安裝或連結到電腦";
    return;
  }
  var cards = 0;
  for (var index in slots) {
    if (slots[index].token == null || slots[index].token === "unknown token") continue;
    var opt = document.createElement("option");
    opt.value = slots[index].slotDescription;
    opt.innerHTML = slots[index].slotDescription + " 卡號:[" + slots[index].token.serialNumber + "]";
    select.appendChild(opt);
    cards++;
  }
  status.textContent = cards ? "元件版本 " + ret.serverVersion + "，" + cards + " 張卡片"
    : "讀卡機未插入IC卡片,請確認卡片是否有放置到讀卡機裡";
}

function addDomain() {
  window.open(componentUrl + "/addDomain?domain=" + window.location.hostname, "AddDomain",
    "height=400, width=400,left=100, top=20");
}

// -- the popup -----------------------------------------------------------------------------------------

function callComponent(path, windowName, request) {
  tbsPackage = JSON.stringify(request);
  postTarget = window.open(componentUrl + path, windowName, "height=200, width=200, left=100, top=20");
  timeoutId = setTimeout(checkFinish, 3500);
}

function checkFinish() {
  if (postTarget) {
    postTarget.close();
    byId("env-status").textContent = "尚未安裝元件 The component is not installed";
  }
}

function receiveMessage(event) {
  if (event.origin != componentOrigin) return;
  var ret = JSON.parse(event.data);
  if (!ret.func) {  // the addDomain page's answer
    if (ret.ret_code == 0) {
      window.location.reload();
    } else {
      byId("env-status").textContent = "加入信任網站失敗, 錯誤代碼 " + hex(ret.ret_code);
    }
    return;
  }
  if (ret.func == "getTbs") {
    clearTimeout(timeoutId);
    postTarget.postMessage(tbsPackage, "*");
    return;
  }
  postTarget = null;
  if (ret.func == "pkcs11info") {
    setUserCert(event.data);
  } else if (ret.func == "sign") {
    setSignature(event.data);
  } else if (ret.func == "decrypt") {
    setDecrypted(event.data);
  } else if (ret.func == "changeUserPINCode") {
    setPinChanged(event.data);
  }
}
window.addEventListener("message", receiveMessage, false);

function errorText(ret) {
  var msg = "錯誤代碼=" + hex(ret.ret_code) + ", 原因:" + ret.message;
  if (ret.last_error) msg = msg + ", 次代碼=" + ret.last_error + ", 次原因:" + ret.message2;
  if (ret.ret_code == LOGIN_FAILED && (ret.last_error == 164 || ret.last_error == -2147483647 || ret.last_error == -2147483646)) {
    msg = msg + "（忘記PIN碼或已鎖卡，請洽發卡單位）";
  }
  return msg;
}

function selectedSlot() {
  var select = byId("slots");
  return select.value || "";
}

// -- 2. GetUserCert ------------------------------------------------------------------------------------

function getUserCert() {
  callComponent("/popupForm", "憑證讀取中", { func: "GetUserCert" });
}

function setUserCert(data) {
  byId("cert-result").textContent = data;
  var ret = JSON.parse(data);
  var table = byId("certs");
  table.innerHTML = "";
  if (ret.ret_code != 0) {
    byId("env-status").textContent = errorText(ret);
    return;
  }
  var slots = ret.slots;
  for (var index in slots) {
    if (slots[index].token == null || slots[index].token === "unknown token") continue;
    var certs = slots[index].token.certs;
    for (var indexCert in certs) {
      var row = table.insertRow(-1);
      var notAfter = new Date(certs[indexCert].notAfterT * 1000);
      row.setAttribute("data-usage", certs[indexCert].usage);
      row.insertCell(-1).textContent = certs[indexCert].label;
      row.insertCell(-1).textContent = certs[indexCert].usage;
      row.insertCell(-1).textContent = certs[indexCert].subjectCN;
      row.insertCell(-1).textContent = notAfter.getFullYear() + "/" + (notAfter.getMonth() + 1) + "/" + notAfter.getDate();
      if (certs[indexCert].usage == "keyEncipherment|dataEncipherment") {
        // What the page would give its server to encrypt to.
        row.setAttribute("data-encryption-cert", certs[indexCert].certb64);
      }
    }
  }
}

// -- 3. MakeSignature ----------------------------------------------------------------------------------

function makeSignature() {
  var tbsData = {};
  tbsData["tbs"] = byId("tbs").value;
  tbsData["tbsEncoding"] = byId("tbs-encoding").value;
  tbsData["hashAlgorithm"] = byId("hash").value;
  tbsData["withCardSN"] = "true";
  tbsData["pin"] = encodeURIComponent(byId("sign-pin").value);
  tbsData["nonce"] = "";
  tbsData["func"] = "MakeSignature";
  tbsData["signatureType"] = byId("signature-type").value;
  tbsData["slotDescription"] = selectedSlot();
  callComponent("/popupForm", "簽章中", tbsData);
}

function setSignature(data) {
  byId("sign-result").textContent = data;
  var ret = JSON.parse(data);
  byId("sign-status").textContent = ret.ret_code == 0 ? "簽章成功 Signed, cardSN " + ret.cardSN : errorText(ret);
}

// -- 4. DecryptData ------------------------------------------------------------------------------------

function decryptData() {
  var tbsData = {};
  tbsData["cipher"] = encodeURIComponent(byId("cipher").value.replace(/[\r\n]/g, ""));
  tbsData["cipherType"] = byId("cipher-type").value;
  tbsData["plainEncoding"] = byId("plain-encoding").value;
  tbsData["pin"] = encodeURIComponent(byId("decrypt-pin").value);
  tbsData["func"] = "DecryptData";
  callComponent("/popupForm", "解密中", tbsData);
}

function setDecrypted(data) {
  byId("decrypt-result").textContent = data;
  var ret = JSON.parse(data);
  byId("plain").value = ret.ret_code == 0 ? ret.plain : errorText(ret);
}

// -- 5. changeUserPINCode (as CHT's own library sends it, through /ChtPopupForm) ----------------------

function changePIN() {
  var oldPin = byId("old-pin").value;
  var newPin = byId("new-pin").value;
  if (decodeURIComponent(encodeURIComponent(newPin)).length > 8) {
    byId("pin-status").textContent = "新PIN碼長度不可超過8碼";
    return;
  }
  var preData = {};
  preData["func"] = "changeUserPINCode";
  preData["currentPIN"] = encodeURIComponent(oldPin);
  preData["newpin"] = encodeURIComponent(newPin);
  preData["slotDescription"] = selectedSlot();
  callComponent("/ChtPopupForm", "ChtPopupForm", preData);
}

function setPinChanged(data) {
  byId("pin-result").textContent = data;
  var ret = JSON.parse(data);
  byId("pin-status").textContent = ret.ret_code == 0 ? "PIN碼已變更 PIN changed" : errorText(ret);
}

byId("self-test").href = componentUrl + "/selfTest.htm";
checkEnvironment();
