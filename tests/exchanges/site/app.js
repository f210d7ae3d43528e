console.log("notmod");
